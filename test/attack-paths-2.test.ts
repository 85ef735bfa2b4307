/**
 * Second attack round, on worker supervision, the SD-card disk path and disk-full recovery. Each test
 * reproduces one path against a real Mosquitto (judged by the independent auditor) and failed on the
 * code it was written against; the comment above each names the cause as it was.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open } from 'holdfast';
import { auditedBrokerWithProxy, drainOutcome, fillDisk, needsRoot, skipUnlessCI, tinyTmpfs, waitUntil } from './helpers.js';
import { injectFault } from './fault-hook.js';

const rig = auditedBrokerWithProxy();
/** How long a correct client gets to deliver. */
const SETTLE_MS = 20_000;

describe('attack paths, round 2 (supervision, SD-card disk path, disk full)', () => {
  /**
   * Journal mode, a full disk. Readings the cache refused wait in DiskFullRecovery's overflow, and the
   * drain sends the oldest of them from memory (drain.ts:116, takeOverflowHead; Exchange cached=false).
   * While it is in flight the retry writes the rest of the overflow (disk-full.ts #writeOverflow), and
   * that append raises the cache's appendedThrough past the reading in flight: the watermark's cap
   * (cache-writer.ts watermarkCap) counts the overflow, the window and other appends, but not the
   * exchange taken out of the overflow. A worker crash (or a SIGKILL) before its PUBREC: the next
   * worker's intake replay skips every seq at or below appendedThrough (intake-replay.ts:43), the
   * reading is in no cache, and journal mode reports a worker crash as losing nothing
   * (supervisor.ts #lost). Lost silently, not evicted.
   */
  it('journal, disk full: a reading sent from memory while the rest wait for space survives a worker crash', { timeout: 120_000 }, async (t) => {
    const missingRoot = needsRoot();
    if (missingRoot) return skipUnlessCI(t, missingRoot);
    const clientId = 'dev-attack2-overflow-head';
    const disk = tinyTmpfs('attack2-overflow-head');
    const cacheDir = join(disk.path, 'cache');
    const fillers = [join(disk.path, 'filler-1'), join(disk.path, 'filler-2')];
    const pad = 'x'.repeat(30_000);
    let evicted = 0;
    try {
      await rig.proxy.refuse(true);
      const c = await open({ broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, durability: 'journal', timeoutMs: 10_000, closeTimeoutMs: 2000, reconnect: { minMs: 100, maxMs: 200 } });
      try {
        c.on('evict', (e: { messages: number }) => (evicted += e.messages));
        c.on('error', () => undefined);
        await waitUntil(() => c.state === 'caching', 10_000, 'the link down: input goes the way of the cache');
        // Three readings in the intake log, then a full disk refuses their append to the cache.
        for (let n = 1; n <= 3; n++) c.publish(`sensors/${clientId}`, JSON.stringify({ device: clientId, n, pad }));
        fillDisk(fillers[0]!);
        await waitUntil(() => !c.stats().cacheWritable, 10_000, 'the cache refusing the append');
        // The refusal released the ballast; keep the disk full until reading 1 is on its way.
        fillDisk(fillers[1]!);
        const dropPublish = rig.proxy.dropPackets('to-broker', 'publish', 1);
        await rig.proxy.refuse(false);
        await waitUntil(() => dropPublish.applied === 1, 10_000, 'reading 1 sent from memory (its PUBLISH lost on the way)');
        rmSync(fillers[1]!);
        // The retry writes readings 2 and 3 while reading 1 is in flight.
        await waitUntil(() => c.stats().cached.messages === 2, 10_000, 'readings 2 and 3 committed to the cache');
        injectFault(c, 'exit');
        await waitUntil(() => c.stats().workerRestarts === 1 && c.state !== 'restarting', 20_000, 'the worker restarted');
        rmSync(fillers[0]!);
        const outcome = await drainOutcome(c, SETTLE_MS);
        const report = await rig.auditor.waitFor({ [clientId]: [1, 2, 3] }, SETTLE_MS, { settleMs: 1000 });
        assert.deepEqual(
          { outcome, missing: report.devices[clientId]?.missing ?? [], duplicates: report.duplicates, evicted, lostInWorkerCrashes: c.stats().lostInWorkerCrashes },
          { outcome: 'drained', missing: [], duplicates: 0, evicted: 0, lostInWorkerCrashes: 0 },
          'every reading the intake log took arrives once (journal mode loses nothing to a worker crash)',
        );
      } finally {
        await c.close().catch(() => undefined);
      }
    } finally {
      await rig.proxy.refuse(false);
      disk.remove();
    }
  });
});
