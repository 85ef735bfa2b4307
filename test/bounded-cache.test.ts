/**
 * Guarantee 4: bounded disk. When the cache is full the lowest priority goes first, oldest first within
 * a priority, and order never changes; every eviction is counted and emitted. A full disk degrades the
 * client (unhealthy, evicting) and never crashes it or corrupts the cache: tested on a real, tiny tmpfs
 * when the tests run as root (CI does), with a tiny maxCache everywhere.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open, ErrorCodes, HoldfastError, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { auditedBrokerWithProxy, recordStderr, tempDir, tinyTmpfs, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions>): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, timeoutMs: 300, reconnect: { minMs: 100, maxMs: 300 }, connectTimeoutMs: 1000, ...extra };
}

describe('bounded cache', () => {
  it('evicts the lowest priority first, oldest first within it, and keeps the order of the rest', async () => {
    const dir = tempDir('evict');
    await rig.proxy.refuse(true);
    try {
      const client = await open(options('dev-evict', dir.path, { maxCache: { messages: 50 } }));
      const evictions: Array<{ messages: number; byPriority: Record<number, number> }> = [];
      client.on('evict', (e: { messages: number; byPriority: Record<number, number> }) => evictions.push(e));
      // 100 readings: every third is an alarm (priority 9), the rest routine telemetry (priority 2).
      const priorityOf = (n: number): number => (n % 3 === 1 ? 9 : 2);
      for (let n = 1; n <= 100; n++) client.publish('sensors/dev-evict', JSON.stringify({ device: 'dev-evict', n }), { priority: priorityOf(n) });
      await client.flush();

      const during = client.stats();
      assert.equal(during.cached.messages, 50);
      assert.equal(during.evicted, 50);
      assert.equal(during.cached.byPriority[9], 34, 'every alarm is kept');
      assert.equal(during.cached.byPriority[2], 16, 'the newest routine readings fill the rest');
      assert.equal(evictions.reduce((sum, e) => sum + e.messages, 0), 50);
      assert.equal(evictions.reduce((sum, e) => sum + (e.byPriority[2] ?? 0), 0), 50, 'only priority 2 was evicted');

      await rig.proxy.refuse(false);
      await client.drained();
      await client.close();
      const routine = Array.from({ length: 100 }, (_, i) => i + 1).filter((n) => priorityOf(n) === 2);
      const expected = [...Array.from({ length: 100 }, (_, i) => i + 1).filter((n) => priorityOf(n) === 9), ...routine.slice(-16)].sort((a, b) => a - b);
      await rig.auditor.waitForCount(50, 10_000).catch(() => undefined);
      const arrivals = rig.auditor.arrivals('dev-evict');
      assert.deepEqual(arrivals, expected, 'survivors arrive exactly once, in publish order');
    } finally {
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });

  it('a full disk (real tmpfs) degrades the client; it keeps what it has, evicts by priority and recovers', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to mount a tmpfs; the maxCache test above covers eviction');
    const disk = tinyTmpfs('diskfull');
    const mount = disk.path;
    await rig.proxy.refuse(true);
    let client: HoldfastClient | undefined;
    const stderr = recordStderr();
    try {
      client = await open(options('dev-full', join(mount, 'cache'), { highWater: { messages: 200 } }));
      const errors: HoldfastError[] = [];
      const c = client;
      c.on('error', (err: HoldfastError) => errors.push(err));
      const payloadPad = 'x'.repeat(1024);
      let accepted = 0;
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 100; i++) {
          accepted++;
          client.publish('sensors/dev-full', JSON.stringify({ device: 'dev-full', n: accepted, pad: payloadPad }), { priority: accepted % 10 === 0 ? 9 : 3 });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitUntil(() => errors.length > 0, 10_000);
      assert.equal(errors[0]!.code, ErrorCodes.CACHE_WRITE_FAILED);
      // lmdb-js prints each failed commit; the worker turns that into a log line, not a raw trace.
      assert.doesNotMatch(stderr.text(), /Input\/output error|ENOSPC|write\.js/);
      assert.ok(client.stats().evicted > 0, 'it made room by evicting');

      await rig.proxy.refuse(false);
      await client.drained();
      const s = client.stats();
      assert.equal(s.cacheWritable, true, 'writable again once space was freed');
      assert.equal(s.delivered + s.evicted, accepted, 'every accepted reading was delivered or counted as evicted');
      await client.close();
      client = undefined;

      const arrivals = rig.auditor.arrivals('dev-full');
      assert.ok(arrivals.every((n, i) => i === 0 || n > arrivals[i - 1]!), 'no reordering, no duplicates');
      const reopened = await open(options('dev-full', join(mount, 'cache'), {}));
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
