/**
 * Monotonic milliseconds (CLOCK_MONOTONIC), the same clock in every thread of the process: timeouts,
 * watchdogs and ages of in-flight exchanges never depend on the wall clock, which a device may jump
 * (NTP at boot, a dead RTC battery). performance.now() is monotonic too, but each thread has its own
 * origin, so values could not be compared across the facade and the worker.
 */
export function monotonicMs(): number {
  const [seconds, nanos] = process.hrtime();
  return seconds * 1000 + nanos / 1e6;
}
