/**
 * Milliseconds on CLOCK_MONOTONIC. process.hrtime() reads the same clock in every thread, so the worker
 * can stamp a time in the shared stats and the app thread can measure from it; performance.now() cannot
 * be shared that way (each thread has its own origin). The wall clock may jump, so it never measures
 * an interval here.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
