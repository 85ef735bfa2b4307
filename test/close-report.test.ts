/**
 * Guarantee 10: close() never reports success when it lost data. A worker stuck in a blocked event
 * loop (the test-only fault hook) is terminated at closeTimeoutMs + 2 s, and close() rejects with
 * HOLDFAST_TIMEOUT naming the count and seq ranges it could not save; a final spill the full disk
 * refuses rejects with HOLDFAST_CACHE_WRITE_FAILED. An independent subscriber checks, after a restart
 * on the same cache, that exactly the reported readings never arrived.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open, ErrorCodes, HoldfastError, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { assertInOrderOnce, assertMissingExactly, drainAgain, injectFault, type Lost } from './fault-hook.js';
import { auditedBrokerWithProxy, fillDisk, needsRoot, skipUnlessCI, tempDir, tinyTmpfs, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();
const CLOSE_TIMEOUT_MS = 1000;

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, timeoutMs: 60_000, closeTimeoutMs: CLOSE_TIMEOUT_MS, reconnect: { minMs: 100, maxMs: 500 }, connectTimeoutMs: 1000, keepaliveSec: 5, ...extra };
}

function publishRange(client: HoldfastClient, device: string, from: number, to: number, seqOf: Map<number, number>, pad = ''): void {
  for (let n = from; n <= to; n++) seqOf.set(n, client.publish(`sensors/${device}`, JSON.stringify({ device, n, pad })));
}

/** close() must reject with `code`; returns what it named as lost. */
async function closeRejects(client: HoldfastClient, code: string): Promise<{ lost: Lost; message: string; elapsedMs: number }> {
  const started = performance.now();
  const err = await client.close().then(
    () => assert.fail('close() resolved although readings were lost'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof HoldfastError, String(err));
  assert.equal(err.code, code, err.message);
  return { lost: err.details?.lost as Lost, message: err.message, elapsedMs: performance.now() - started };
}


describe('close() reports what it could not save', () => {
  it('spill, broker hung (SIGSTOP), worker hung: HOLDFAST_TIMEOUT names exactly the readings lost', async () => {
    const device = 'dev-close-hang';
    const dir = tempDir('close-hang');
    const seqOf = new Map<number, number>();
    try {
      const client = await open(options(device, dir.path));
      publishRange(client, device, 1, 20, seqOf);
      await client.drained();
      rig.broker.pause();
      publishRange(client, device, 21, 80, seqOf);
      await waitUntil(() => client.stats().memoryQueued + client.stats().inflight === 60, 10_000, 'the worker to hold 21..80');
      injectFault(client, 'hang');
      const { lost, message, elapsedMs } = await closeRejects(client, ErrorCodes.TIMEOUT);
      assert.ok(elapsedMs < CLOSE_TIMEOUT_MS + 2000 + 1000, `close() took ${Math.round(elapsedMs)} ms`);
      assert.deepEqual(lost, { count: 60, ranges: [[seqOf.get(21)!, seqOf.get(80)!]] });
      assert.match(message, /terminated the worker; lost: 60 readings \(seqs \d+-\d+\)/);
      assert.throws(() => client.publish(`sensors/${device}`, 'x'), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.CLOSED);

      rig.broker.resume();
      await drainAgain(options(device, dir.path, { durability: 'spill' }));
      await rig.auditor.waitFor({ [device]: [...seqOf.keys()].filter((n) => n <= 20) }, 20_000);
      const arrived = rig.auditor.arrivals(device);
      assertInOrderOnce(arrived);
      assertMissingExactly(seqOf, arrived, lost);
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('journal, worker hung: HOLDFAST_TIMEOUT, nothing lost (the intake log has it all), delivered after a restart', async () => {
    const device = 'dev-close-hang-journal';
    const dir = tempDir('close-hang-journal');
    const seqOf = new Map<number, number>();
    try {
      await rig.proxy.refuse(true);
      const client = await open(options(device, dir.path, { durability: 'journal' }));
      publishRange(client, device, 1, 60, seqOf);
      injectFault(client, 'hang');
      publishRange(client, device, 61, 80, seqOf);
      const { lost, message } = await closeRejects(client, ErrorCodes.TIMEOUT);
      assert.equal(lost.count, 0);
      assert.match(message, /nothing was lost/);
      await rig.proxy.refuse(false);
      await drainAgain(options(device, dir.path, { durability: 'journal' }));
      const report = await rig.auditor.waitFor({ [device]: seqOf.keys() }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });

  it('the final spill refused by a full disk: HOLDFAST_CACHE_WRITE_FAILED names exactly the readings lost', async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const device = 'dev-close-full';
    const disk = tinyTmpfs('close-full');
    const cacheDir = join(disk.path, 'cache');
    const filler = join(disk.path, 'filler');
    const seqOf = new Map<number, number>();
    try {
      const client = await open(options(device, cacheDir));
      // The full disk's eviction attempts are reported as 'error' events (without a listener, warnings).
      const errors: HoldfastError[] = [];
      client.on('error', (err: HoldfastError) => errors.push(err));
      // A hung broker keeps the connection up, so nothing spills before close(): the readings wait in
      // memory (a refused connection would spill them on its own, racing the full disk).
      rig.broker.pause();
      publishRange(client, device, 1, 50, seqOf, 'x'.repeat(2048));
      await waitUntil(() => client.stats().memoryQueued + client.stats().inflight === 50, 10_000, 'the worker to hold 1..50');
      fillDisk(filler);
      const { lost, message } = await closeRejects(client, ErrorCodes.CACHE_WRITE_FAILED);
      assert.ok(lost.count > 0, 'the full disk refused the spill');
      assert.match(message, /could not write every pending reading to the cache; lost: \d+ readings?/);
      assert.deepEqual(errors.filter((err) => err.code !== ErrorCodes.CACHE_WRITE_FAILED), [], 'only the full disk is reported');

      rmSync(filler);
      rig.broker.resume();
      await drainAgain(options(device, cacheDir, { durability: 'spill' }));
      await rig.auditor.waitFor({ [device]: [...seqOf.keys()].filter((n) => !lost.ranges.some(([a, b]) => seqOf.get(n)! >= a && seqOf.get(n)! <= b)) }, 20_000);
      const arrived = rig.auditor.arrivals(device);
      assertInOrderOnce(arrived);
      assertMissingExactly(seqOf, arrived, lost);
    } finally {
      rig.broker.resume();
      disk.remove();
    }
  });
});
