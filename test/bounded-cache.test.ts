/**
 * Guarantee 4: bounded disk. When the cache is full the lowest priority goes first, oldest first within
 * a priority, and order never changes; every eviction is counted and emitted. A full disk degrades the
 * client (unhealthy, evicting) and never crashes it or corrupts the cache: tested on a real, tiny tmpfs
 * (root only; CI runs as root), with a tiny maxCache everywhere. What survived is judged at the
 * subscriber, and what /health said is read over HTTP.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open, ErrorCodes, HoldfastError, type HealthReport, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import {
  auditedBrokerWithProxy,
  needsRoot,
  recordStderr,
  skipUnlessCI,
  tempDir,
  tinyTmpfs,
  waitUntil,
} from './helpers.js';
import { assertEvictedByPriority, openWithHealth, settledArrivals, watchHealth, type PublishedReading } from './eviction.js';

const rig = auditedBrokerWithProxy();

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions>): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, timeoutMs: 300, reconnect: { minMs: 100, maxMs: 300 }, connectTimeoutMs: 1000, ...extra };
}

describe('bounded cache', () => {
  it('evicts the lowest priority first, oldest first within it, and keeps the order of the rest', async () => {
    const dir = tempDir('evict');
    await rig.proxy.refuse(true);
    let client: HoldfastClient | undefined;
    try {
      const opened = await openWithHealth(options('dev-evict', dir.path, { maxCache: { messages: 50 } }));
      client = opened.client;
      const evictions: Array<{ messages: number; byPriority: Record<number, number> }> = [];
      client.on('evict', (e: { messages: number; byPriority: Record<number, number> }) => evictions.push(e));
      // 100 readings: every third is an alarm (priority 9), the rest routine telemetry (priority 2).
      const priorityOf = (n: number): number => (n % 3 === 1 ? 9 : 2);
      const published: PublishedReading[] = [];
      for (let n = 1; n <= 100; n++) {
        client.publish('sensors/dev-evict', JSON.stringify({ device: 'dev-evict', n }), { priority: priorityOf(n) });
        published.push({ n, priority: priorityOf(n) });
      }
      await client.flush();

      const during = await opened.health();
      assert.equal(during.status, 'unhealthy');
      assert.ok(during.reasons.includes('cache holds 50 of 50 messages'), `/health reasons: ${during.reasons.join('; ')}`);
      assert.equal(during.stats.evicted, 50, '/health reports the evictions');
      assert.equal(evictions.reduce((sum, e) => sum + e.messages, 0), 50, 'every eviction was emitted');

      await rig.proxy.refuse(false);
      const arrivals = await settledArrivals(rig.auditor, client, 'dev-evict', 101);
      const routine = published.filter((r) => r.priority === 2).map((r) => r.n);
      const expected = [...published.filter((r) => r.priority === 9).map((r) => r.n), ...routine.slice(-16)].sort((a, b) => a - b);
      assert.deepEqual(arrivals, expected, 'every alarm and the newest 16 routine readings arrive exactly once, in publish order');
      assert.deepEqual(assertEvictedByPriority(published, arrivals), routine.slice(0, 50));
    } finally {
      await client?.close();
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });

  it('a full disk (real tmpfs) degrades the client; it keeps what it has, evicts by priority and recovers', async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const disk = tinyTmpfs('diskfull');
    const cacheDir = join(disk.path, 'cache');
    await rig.proxy.refuse(true);
    let client: HoldfastClient | undefined;
    const stderr = recordStderr();
    try {
      const opened = await openWithHealth(options('dev-full', cacheDir, { highWater: { messages: 200 } }));
      client = opened.client;
      const c = client;
      const errors: HoldfastError[] = [];
      c.on('error', (err: HoldfastError) => errors.push(err));
      let emitted = 0;
      c.on('evict', (e: { messages: number }) => (emitted += e.messages));
      const reports: HealthReport[] = [];
      const watching = watchHealth(opened.health, reports, (r) => r.reasons.includes('cache not writable'));

      const pad = 'x'.repeat(1024);
      const published: PublishedReading[] = [];
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 100; i++) {
          const n = published.length + 1;
          const priority = n % 10 === 0 ? 9 : 3;
          c.publish('sensors/dev-full', JSON.stringify({ device: 'dev-full', n, pad }), { priority });
          published.push({ n, priority });
        }
        // Paced so the worker spills round by round and the disk fills while it writes.
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitUntil(() => errors.length > 0, 10_000, 'the disk-full error');
      await watching;
      assert.equal(errors[0]!.code, ErrorCodes.CACHE_WRITE_FAILED);
      // lmdb-js prints each failed commit; the worker turns that into a log line, not a raw trace.
      assert.doesNotMatch(stderr.text(), /Input\/output error|ENOSPC|write\.js/);
      const unhealthy = reports.find((r) => r.reasons.includes('cache not writable'));
      assert.ok(unhealthy, `/health said 'cache not writable' during the episode; it said: ${reports.map((r) => r.reasons.join(', ')).join(' | ')}`);
      assert.equal(unhealthy.status, 'unhealthy');
      await waitUntil(async () => (await opened.health()).stats.evicted > 0, 10_000, '/health to report evictions');
      // The episode ends with the link still down, so eviction never races an exchange in flight
      // (which it must never take, whatever its priority).
      await waitUntil(() => c.stats().cacheWritable, 30_000, 'the cache to recover');

      await rig.proxy.refuse(false);
      const arrivals = await settledArrivals(rig.auditor, c, 'dev-full', published.length + 1);
      const evicted = assertEvictedByPriority(published, arrivals);
      assert.ok(evicted.length > 0, 'the full disk really forced evictions');
      assert.ok(evicted.every((n) => n % 10 !== 0), `no alarm was evicted while routine readings were cached; evicted alarms: ${evicted.filter((n) => n % 10 === 0).join(' ')}; surviving routine: ${arrivals.filter((n) => n % 10 !== 0).join(' ')}`);
      const s = c.stats();
      assert.equal(s.evicted, evicted.length, 'every reading missing at the subscriber was counted as evicted');
      assert.equal(emitted, evicted.length, 'and emitted');
      assert.equal(s.cacheWritable, true, 'writable again once space was freed');
      assert.ok(!(await opened.health()).reasons.includes('cache not writable'), '/health no longer says so');
      await c.close();
      client = undefined;

      const reopened = await open(options('dev-full', cacheDir, {}));
      let quarantined = false;
      reopened.on('quarantine', () => (quarantined = true));
      await reopened.drained();
      await reopened.close();
      assert.equal(quarantined, false, 'the cache was not corrupted');
    } finally {
      stderr.stop();
      await client?.close();
      await rig.proxy.refuse(false);
      disk.remove();
    }
  });
});
