/**
 * Issue F section 3: journal mode on a disk that fills, found by reading the cache writer. A real 1 MiB
 * tmpfs (root only; CI runs as root) holds the cache directory. A full disk may cost readings only by
 * priority eviction, each one counted and emitted (guarantee 4); it must never lose a reading silently
 * across a crash, nor wedge the client.
 */
import assert from 'node:assert/strict';
import { readdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open, type HealthReport, type HoldfastClient } from 'holdfast';
import type { DeviceProcess } from '@holdfast/testkit';
import { assertEvictedByPriority, onePriority, openWithHealth, settledArrivals, watchHealth } from './eviction.js';
import { acceptedNumbers, auditedBrokerWithProxy, drainOutcome, needsRoot, skipUnlessCI, startDevice, tinyTmpfs, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();

/** Evictions a device reported, summed over its 'evict' events. */
const evictedBy = (device: DeviceProcess): number => device.events.reduce((sum, e) => sum + (typeof e.evict === 'number' ? e.evict : 0), 0);

describe('journal mode on a full disk (issue F section 3)', () => {
  /**
   * F#3.1. One burst of 500 readings of 1 KiB, all in the intake log, whose cache append does not fit.
   * Cache.append raises the in-memory `appendedThrough` to 500 inside that transaction, and the failed
   * commit does not lower it. CacheWriter then writes the waiting readings back in 64 KiB chunks: the
   * first chunk that commits stores appendedThrough = 500 while the later ones still wait for space
   * (the link is down and the reading in flight waits for timeoutMs, 10 s by default, and until then
   * every queued reading is protected, so nothing can be evicted to make room). After a SIGKILL, the intake log replay skips
   * every seq up to 500: the readings that were still waiting are lost, without any eviction reported.
   */
  it('F#3.1: a crash after a disk-full episode loses nothing but what was evicted and reported', { timeout: 120_000 }, async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const clientId = 'dev-full-crash';
    const disk = tinyTmpfs('full-crash');
    const common = { broker: rig.proxy.url, clientId, cacheDir: join(disk.path, 'cache'), durability: 'journal', protocol: rig.protocol } as const;
    const devices: DeviceProcess[] = [];
    try {
      await rig.proxy.refuse(true);
      // Every reading is accepted in one tick, so all are in the intake log before the cache fails.
      const first = startDevice({ ...common, rate: 1_000_000, count: 500, pad: 1000, timeoutMs: 10_000, after: 'watch' });
      devices.push(first);
      const stats = (e: Record<string, unknown>): { cacheWritable: boolean; cached: number } | undefined => e.stats as { cacheWritable: boolean; cached: number } | undefined;
      await first.waitForEvent((e) => stats(e)?.cacheWritable === false, 20_000);
      // Today's writer: the burst's own transaction failed, so a count between 0 and 500 means chunks
      // committed since, the raised mark with them. A writer that behaves otherwise is killed anyway.
      await first.waitForEvent((e) => (stats(e)?.cached ?? 0) > 0 && (stats(e)?.cached ?? 500) < 500 && stats(e)?.cacheWritable === false, 10_000).catch(() => undefined);
      await first.kill('SIGKILL');
      await rig.proxy.refuse(false);

      const second = startDevice({ ...common, count: 0, timeoutMs: 1000, after: 'drain' });
      devices.push(second);
      await second.waitForEvent((e) => e.drained === true, 60_000);
      const accepted = acceptedNumbers(first);
      assert.equal(accepted.length, 500);
      const report = await rig.auditor.waitFor({ [clientId]: accepted }, 10_000);
      const evicted = evictedBy(first) + evictedBy(second);
      assert.deepEqual(
        { lostBeyondEvicted: Math.max(0, report.lost - evicted), duplicates: report.duplicates, outOfOrder: report.outOfOrder },
        { lostBeyondEvicted: 0, duplicates: 0, outOfOrder: 0 },
        `lost ${report.lost} (the first: ${report.devices[clientId]?.missing[0]}) with ${evicted} evicted and reported`,
      );
      // Judged at the subscriber, not by the client's count: whatever is gone went oldest first (one priority).
      assertEvictedByPriority(onePriority(accepted), rig.auditor.arrivals(clientId));
    } finally {
      await rig.proxy.refuse(false);
      for (const device of devices) await device.kill().catch(() => undefined);
      disk.remove();
    }
  });

  /**
   * F#3.4. Journal mode with the default highWater (10,000), on a card that other files have nearly
   * filled (no room for the ballast): a burst of 300 readings arrives during an outage and its cache
   * append fails. In DIRECT the memory queue holds every reading from the uncommitted head on, all of
   * them protected (Sender.#queuedToSend); #retry has nothing it may evict, and the 64 KiB chunk that
   * would re-append the head never fits, so the retry loop fails forever. #pump never sends an
   * uncommitted head, so nothing is in flight and no timeout ever spills to CACHING; only 10,000 queued
   * readings would (with highWater 200, as the intake-log test uses, it escapes at once). Meanwhile
   * publish() skipped the intake log (cacheWritable was 0) and flush() waited for a commit that never
   * came. When the link is back, nothing flowed. Today journal mode refuses a reading it cannot write
   * to its intake log (publish() throws CACHE_WRITE_FAILED), so everything it accepted is on the disk.
   */
  it('F#3.4: a full disk with the default highWater: flush() settles and readings flow once the link is fine, evicting by priority', { timeout: 90_000 }, async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const clientId = 'dev-full-wedge';
    const disk = tinyTmpfs('full-wedge');
    const free = (): number => {
      const s = statfsSync(disk.path);
      return s.bavail * s.bsize;
    };
    let client: HoldfastClient | undefined;
    try {
      // Other files leave 128 KiB: room to open the cache, none for its reserve or the burst.
      writeFileSync(join(disk.path, 'other-files'), Buffer.alloc(free() - 128 * 1024));
      await rig.proxy.refuse(true);
      const opened = await openWithHealth({ broker: rig.proxy.url, clientId, cacheDir: join(disk.path, 'cache'), durability: 'journal', protocolVersion: rig.protocol, reconnect: { minMs: 200, maxMs: 1000 } });
      client = opened.client;
      const c = client;
      const reports: HealthReport[] = [];
      const watching = watchHealth(opened.health, reports, (r) => r.reasons.includes('cache not writable'));
      const errors: string[] = [];
      const evictions: Array<{ messages: number; byPriority: Record<number, number> }> = [];
      c.on('error', (err: { code: string }) => errors.push(err.code));
      c.on('evict', (e: { messages: number; byPriority: Record<number, number> }) => evictions.push(e));
      const pad = 'x'.repeat(1024);
      // Every tenth reading is an alarm (priority 9); the rest routine telemetry (priority 3).
      const priorityOf = (n: number): number => (n % 10 === 0 ? 9 : 3);
      // Journal mode accepts only what it wrote to its intake log: on this card some are refused.
      const accepted: number[] = [];
      for (let n = 1; n <= 300; n++) {
        try {
          c.publish(`sensors/${clientId}`, JSON.stringify({ device: clientId, n, pad }), { priority: priorityOf(n) });
          accepted.push(n);
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'HOLDFAST_CACHE_WRITE_FAILED', String(err));
        }
      }
      let flushed: string | undefined;
      c.flush().then(
        () => (flushed = 'resolved'),
        (err: { code: string }) => (flushed = `rejected with ${err.code}`),
      );
      await waitUntil(() => accepted.length < 300 || !c.stats().cacheWritable, 10_000, 'the full disk to show');
      await watching;
      assert.ok(
        reports.some((r) => r.status === 'unhealthy' && r.reasons.includes('cache not writable')),
        `/health said 'cache not writable' during the episode; it said: ${reports.map((r) => r.reasons.join(', ')).join(' | ')}`,
      );

      await rig.proxy.refuse(false);
      const evicted = (): number => evictions.reduce((sum, e) => sum + e.messages, 0);
      await waitUntil(() => c.stats().delivered + evicted() === accepted.length, 15_000, 'every accepted reading delivered or evicted and reported').catch((err: Error) => {
        throw new Error(`${err.message}; flush() ${flushed ?? 'still pending'}; stats ${JSON.stringify(c.stats())}`);
      });
      await waitUntil(() => flushed !== undefined, 10_000, 'flush() to settle');
      assert.ok(evictions.every((e) => Object.keys(e.byPriority).every((p) => p === '3')), `only routine readings evicted: ${JSON.stringify(evictions)}`);
      // Judged at the subscriber: the settled arrivals are unique and in order, and what never came
      // went lowest priority first, oldest first; as many as the client reported evicted.
      const arrivals = await settledArrivals(rig.auditor, c, clientId, 301);
      assert.ok(arrivals.every((n) => accepted.includes(n)), 'nothing refused was sent');
      const gone = assertEvictedByPriority(accepted.map((n) => ({ n, priority: priorityOf(n) })), arrivals);
      assert.equal(gone.length, evicted(), 'every reading that never arrived was evicted and reported');
      assert.equal(await drainOutcome(c, 20_000), 'drained');
    } finally {
      await rig.proxy.refuse(false);
      await client?.close();
      disk.remove();
    }
  });
  it('open() on a disk too full for a new cache rejects at once with HOLDFAST_CACHE_UNAVAILABLE and moves nothing aside', { timeout: 60_000 }, async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const disk = tinyTmpfs('full-open');
    try {
      const free = statfsSync(disk.path);
      writeFileSync(join(disk.path, 'filler'), Buffer.alloc(free.bavail * free.bsize - 16 * 1024));
      const cacheDir = join(disk.path, 'cache');
      const startedAt = performance.now();
      await assert.rejects(open({ broker: rig.proxy.url, clientId: 'dev-full-open', cacheDir, durability: 'journal', protocolVersion: rig.protocol }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'HOLDFAST_CACHE_UNAVAILABLE', err.message);
        assert.match(err.message, /disk is full/);
        return true;
      });
      assert.ok(performance.now() - startedAt < 10_000, 'at once, not after the open timeout');
      assert.deepEqual(readdirSync(cacheDir).filter((f) => f.includes('corrupt')), [], 'nothing quarantined: the cache is not damaged');
    } finally {
      disk.remove();
    }
  });
});
