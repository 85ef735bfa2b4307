/**
 * Guarantee 6: clock jumps are harmless. The device's wall clock (libfaketime, preloaded into the
 * device process only; its monotonic clock stays real) jumps while readings sit in the cache during
 * an outage, in both durability modes. Order, spilling, draining and timeouts use seqs and monotonic
 * timers, so nothing may be dropped or reordered. Each test first checks that the device really saw
 * its clock jump. The watchdog, which catches a lost acknowledgement on a live connection, must fire
 * though the clock went back while it waited. Two waits that once ran on the wall clock are covered
 * too: the intake log's retry after a failed write, and close()'s time budget.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnDevice, type DeviceEvent, type DeviceProcess } from '@holdfast/testkit';
import { acceptedNumbers, auditedBrokerWithProxy, deviceScript, faketimeLibrary, skipUnlessCI, tempDir, waitUntil } from './helpers.js';

const DAY_MS = 24 * 3600 * 1000;
const faketime = faketimeLibrary();
const NO_FAKETIME = 'libfaketime is not installed (Debian: apt-get install faketime)';
const intakeRetryScript = deviceScript.replace(/device\.ts$/, 'intake-retry.ts');

const rig = auditedBrokerWithProxy();
const dir = tempDir('clock');
after(() => dir.remove());

/** A faked wall clock for one child process: write an offset such as '+365d' to the file to jump. */
function fakeClock(name: string): { env: Record<string, string>; set(offset: string): void } {
  const file = join(dir.path, `${name}.faketime`);
  writeFileSync(file, '+0');
  return {
    env: { LD_PRELOAD: faketime!, FAKETIME_TIMESTAMP_FILE: file, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    set: (offset) => writeFileSync(file, offset),
  };
}

function startFakeClockDevice(clientId: string, clock: Record<string, string>, env: Record<string, string>): DeviceProcess {
  return spawnDevice({
    script: deviceScript,
    execArgv: ['--import', 'tsx'],
    env: { ...clock, HF_BROKER: rig.proxy.url, HF_CLIENT_ID: clientId, HF_CACHE_DIR: join(dir.path, clientId), HF_PROTOCOL: String(rig.protocol), ...env },
  });
}

/** The device's Date.now() on an event that carries it. */
const wall = (e: DeviceEvent): number | undefined => (typeof e.wall === 'number' ? e.wall : undefined);

/** Waits until the device has accepted `more` readings after the last one seen: stamped by the clock it has now. */
async function acceptMore(device: DeviceProcess, more: number): Promise<void> {
  const from = acceptedNumbers(device).at(-1) ?? 0;
  await device.waitForEvent((e) => typeof e.n === 'number' && e.n >= from + more, 10_000);
}

describe('clock jumps', () => {
  for (const durability of ['spill', 'journal'] as const) {
    it(`${durability}: a wall clock jumping a year forward and two back while readings are cached loses and reorders nothing`, async (t) => {
      if (!faketime) return skipUnlessCI(t, NO_FAKETIME);
      const clientId = `dev-clock-${durability}`;
      const clock = fakeClock(clientId);
      const device = startFakeClockDevice(clientId, clock.env, { HF_RATE: '100', HF_COUNT: '600', HF_TIMEOUT_MS: '500', HF_DURABILITY: durability, HF_AFTER: 'drain' });
      try {
        await device.waitForEvent((e) => typeof e.n === 'number' && e.n >= 100, 15_000);
        await rig.proxy.refuse(true);
        await device.waitForEvent((e) => e.state === 'caching', 10_000);
        await acceptMore(device, 20);
        // Each era's readings wait in the cache side by side, stamped a year ahead and then a year
        // behind the ones before them: a drain that trusted the stamps would reorder or skip them.
        clock.set('+365d');
        await device.waitForEvent((e) => (wall(e) ?? 0) > Date.now() + 300 * DAY_MS, 10_000);
        await acceptMore(device, 20);
        clock.set('-365d');
        await device.waitForEvent((e) => (wall(e) ?? Infinity) < Date.now() - 300 * DAY_MS, 10_000);
        await acceptMore(device, 20);
        await rig.proxy.refuse(false);
        await device.waitForEvent((e) => e.drained === true, 60_000);

        const accepted = acceptedNumbers(device);
        assert.equal(accepted.length, 600);
        const report = await rig.auditor.waitFor({ [clientId]: accepted }, 15_000);
        assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
        const statsLines = device.events.filter((e) => typeof e.stats === 'object') as Array<{ stats: { cached: number } }>;
        assert.ok(statsLines.some((e) => e.stats.cached > 0), 'readings really waited in the cache across the jumps');
      } finally {
        await rig.proxy.refuse(false);
        await device.kill().catch(() => undefined);
      }
    });
  }

  it('the watchdog times a lost acknowledgement on the monotonic clock: a wall clock set back a year meanwhile cannot wedge the queue', async (t) => {
    if (!faketime) return skipUnlessCI(t, NO_FAKETIME);
    const clientId = 'dev-clock-watchdog';
    const clock = fakeClock(clientId);
    // The watchdog waits 5 s: the clock goes back well inside that, while the PUBREC is missing.
    const device = startFakeClockDevice(clientId, clock.env, { HF_RATE: '50', HF_COUNT: '300', HF_TIMEOUT_MS: '500', HF_WATCHDOG_MS: '5000', HF_AFTER: 'drain' });
    try {
      await device.waitForEvent((e) => typeof e.n === 'number' && e.n >= 50, 15_000);
      const fault = rig.proxy.dropPackets('to-client', 'pubrec', 1);
      await waitUntil(() => fault.applied === 1, 10_000, 'a PUBREC to be dropped');
      clock.set('-365d');
      await device.waitForEvent((e) => (wall(e) ?? Infinity) < Date.now() - 300 * DAY_MS, 10_000);
      // A watchdog on the wall clock would wait a year for this.
      await device.waitForEvent((e) => typeof e.watchdog === 'number', 30_000);
      await device.waitForEvent((e) => e.drained === true, 60_000);

      const accepted = acceptedNumbers(device);
      assert.equal(accepted.length, 300);
      const report = await rig.auditor.waitFor({ [clientId]: accepted }, 15_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      await device.kill().catch(() => undefined);
    }
  });

  it('the intake log retries a failed write after its delay, though the wall clock went back a year meanwhile', async (t) => {
    if (!faketime) return skipUnlessCI(t, NO_FAKETIME);
    const clock = fakeClock('intake-retry');
    const segments = tempDir('clock-intake');
    const child = spawnDevice({ script: intakeRetryScript, execArgv: ['--import', 'tsx'], env: { ...clock.env, HF_DIR: segments.path, HF_CLOCK: join(dir.path, 'intake-retry.faketime') } });
    try {
      await child.exited;
      const [before, afterJump] = child.events.filter((e) => wall(e) !== undefined).map((e) => wall(e)!);
      assert.ok(before !== undefined && afterJump !== undefined && before - afterJump > 300 * DAY_MS, `the child's clock went back a year: ${JSON.stringify(child.events)}`);
      assert.ok(child.events.some((e) => e.failed === 'ENOENT'), 'the first segment could not be created');
      const result = child.events.find((e) => typeof e.retried === 'boolean');
      assert.equal(result?.retried, true, `the log wrote a new segment once its retry delay had passed: ${JSON.stringify(child.events)}`);
    } finally {
      await child.kill().catch(() => undefined);
      segments.remove();
    }
  });

  it('close() times its budget on the monotonic clock: a wall clock set back a day meanwhile changes nothing', async (t) => {
    if (!faketime) return skipUnlessCI(t, NO_FAKETIME);
    // The facade terminates a worker still closing at closeTimeoutMs + 2 s: a budget stretched by the
    // clock ends there, a second past the limit asserted below.
    const CLOSE_TIMEOUT_MS = 2500;
    const clock = fakeClock('dev-clock-close');
    const device = startFakeClockDevice('dev-clock-close', clock.env, { HF_RATE: '20', HF_TIMEOUT_MS: '60000', HF_CLOSE_TIMEOUT_MS: String(CLOSE_TIMEOUT_MS) });
    try {
      await device.waitForEvent((e) => typeof e.stats === 'object' && (e.stats as { delivered: number }).delivered > 0, 15_000);
      // A message stays in flight (its PUBCOMP held back), so close() waits for it inside its budget.
      rig.proxy.holdDownstreamAt('pubcomp');
      await waitUntil(() => rig.proxy.holdingDownstream, 10_000, 'a PUBCOMP to hold');
      const signalled = performance.now();
      process.kill(device.pid, 'SIGTERM');
      // close() has started its budget when it spills what is pending; then the clock goes back a day
      // (a year would not fit in a timer: Node would fire it at once and hide a wall-clock budget).
      await device.waitForEvent((e) => e.state === 'caching', 5000);
      clock.set('-1d');
      // The PUBCOMP goes through, then the link stalls: the DISCONNECT gets no answer, so the budget's
      // own timer is what ends close().
      rig.proxy.holdDownstreamAt(undefined);
      rig.proxy.stall(true);
      const closed = await device.waitForEvent((e) => e.closed === true, 30_000);
      const tookMs = performance.now() - signalled;
      assert.ok((wall(closed) ?? Infinity) < Date.now() - DAY_MS / 2, `the device's clock went back: ${JSON.stringify(closed)}`);
      assert.ok(tookMs < CLOSE_TIMEOUT_MS + 1000, `close() took ${Math.round(tookMs)} ms with a budget of ${CLOSE_TIMEOUT_MS} ms`);
      assert.equal((await device.exited).code, 0);
    } finally {
      rig.proxy.stall(false);
      rig.proxy.holdDownstreamAt(undefined);
      await device.kill().catch(() => undefined);
    }
  });
});
