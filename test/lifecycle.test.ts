/**
 * The client's lifecycle against a real broker: open() without a broker, restart with a non-empty
 * cache, bounded close() with the broker hung, flush(), drained(), stats() and the state machine.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open, HoldfastError, ErrorCodes, type HoldfastOptions, type ClientState, type Connectivity } from 'holdfast';
import { auditedBrokerWithProxy, tempDir, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, timeoutMs: 500, reconnect: { minMs: 100, maxMs: 500 }, connectTimeoutMs: 1000, keepaliveSec: 5, ...extra };
}

function reading(device: string, n: number): string {
  return JSON.stringify({ device, n });
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('lifecycle', () => {
  it('open() resolves with no broker reachable, and the readings wait in the cache', async () => {
    const dir = tempDir('offline');
    await rig.proxy.refuse(true);
    try {
      const client = await open(options('dev-offline', dir.path));
      for (let n = 1; n <= 20; n++) client.publish('sensors/dev-offline', reading('dev-offline', n));
      await client.flush();
      assert.equal(client.stats().connected, false);
      assert.equal(client.stats().cached.messages, 20, 'flush() while offline spills everything');
      await client.close();
    } finally {
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });

  it('restart with a non-empty cache drains it before new input, in order', async () => {
    const dir = tempDir('restart');
    try {
      await rig.proxy.refuse(true);
      const first = await open(options('dev-restart', dir.path));
      for (let n = 1; n <= 50; n++) first.publish('sensors/dev-restart', reading('dev-restart', n));
      await first.close();
      await rig.proxy.refuse(false);

      const second = await open(options('dev-restart', dir.path));
      // Attached after open() resolved, as an app does: the start's drain-start still arrives.
      const drains: Array<[string, Record<string, unknown>]> = [];
      for (const name of ['drain-start', 'drain-end']) second.on(name, (data: Record<string, unknown>) => drains.push([name, data]));
      assert.equal(second.state, 'draining');
      assert.equal(second.stats().cached.messages, 50);
      for (let n = 51; n <= 100; n++) second.publish('sensors/dev-restart', reading('dev-restart', n));
      await second.drained();
      assert.equal(second.state, 'direct');
      assert.equal(second.stats().cached.messages, 0);
      // One drain: the 50 cached, plus those of the readings published meanwhile that reached the cache
      // before it ended (they wait in a 250 ms append window; what never reached it goes out from memory).
      assert.deepEqual(drains.map(([name]) => name), ['drain-start', 'drain-end']);
      assert.equal(drains[0]![1].cached, 50);
      const drained = Number(drains[1]![1].delivered);
      assert.ok(drained >= 50 && drained <= 100, `the drain delivered ${drained}`);
      // A second outage: its drain-end counts that drain (not the 110 delivered since open()). The
      // reading stuck in flight completes as the drain starts, so it may or may not count.
      await rig.proxy.refuse(true);
      await waitUntil(() => second.stats().offline, 5000);
      for (let n = 101; n <= 110; n++) second.publish('sensors/dev-restart', reading('dev-restart', n));
      await second.flush();
      await rig.proxy.refuse(false);
      await second.drained();
      assert.deepEqual(drains.slice(2).map(([name]) => name), ['drain-start', 'drain-end']);
      const delivered = Number(drains[3]![1].delivered);
      assert.ok(delivered >= 9 && delivered <= 10, `the second drain delivered ${delivered}`);
      await second.close();

      const report = await rig.auditor.waitFor({ 'dev-restart': range(1, 110) }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
      assert.deepEqual(rig.auditor.arrivals('dev-restart'), range(1, 110));
    } finally {
      dir.remove();
    }
  });

  it('close() with the broker hung returns in bounded time and loses nothing', async () => {
    const dir = tempDir('hung');
    try {
      const first = await open(options('dev-hung', dir.path, { closeTimeoutMs: 1000 }));
      for (let n = 1; n <= 30; n++) first.publish('sensors/dev-hung', reading('dev-hung', n));
      await first.drained();
      rig.broker.pause();
      for (let n = 31; n <= 60; n++) first.publish('sensors/dev-hung', reading('dev-hung', n));
      const started = performance.now();
      await first.close();
      const elapsed = performance.now() - started;
      rig.broker.resume();
      assert.ok(elapsed < 1000 + 2000, `close() took ${Math.round(elapsed)} ms with closeTimeoutMs 1000`);
      assert.throws(() => first.publish('sensors/dev-hung', 'x'), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.CLOSED);
      await assert.rejects(first.flush(), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.CLOSED);

      const second = await open(options('dev-hung', dir.path));
      assert.ok(second.stats().cached.messages >= 29, 'what was pending at close() is in the cache');
      await second.drained();
      await second.close();
      const report = await rig.auditor.waitFor({ 'dev-hung': range(1, 60) }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('walks DIRECT → CACHING → DRAINING → DIRECT through an outage, with accurate stats', async () => {
    const dir = tempDir('states');
    try {
      const client = await open(options('dev-states', dir.path));
      client.publish('sensors/dev-states', reading('dev-states', 1));
      await client.drained();
      assert.equal(client.stats().connected, true);
      const states: ClientState[] = [];
      const offline: boolean[] = [];
      client.on('state', (s: ClientState, c: Connectivity) => {
        // Also emitted when only the offline flag changes: record each state once, in order.
        if (states.at(-1) !== s) states.push(s);
        if (offline.at(-1) !== c.offline) offline.push(c.offline);
      });
      await rig.proxy.refuse(true);
      for (let n = 2; n <= 40; n++) client.publish('sensors/dev-states', reading('dev-states', n));
      await waitUntil(() => client.state === 'caching', 5000);
      await client.flush();
      const during = client.stats();
      assert.equal(during.cached.messages, 39);
      assert.equal(during.cached.byPriority[5], 39);
      assert.ok(during.cached.bytes > 0);
      assert.ok(during.spilled >= 39);
      assert.equal(during.memoryQueued, 0);
      await rig.proxy.refuse(false);
      await client.drained();
      const end = client.stats();
      assert.equal(end.delivered, 40);
      assert.equal(end.cached.messages, 0);
      assert.ok(end.reconnects >= 1);
      assert.ok(end.networkDisconnects >= 1);
      assert.deepEqual(states, ['direct', 'caching', 'draining', 'direct']);
      // Offline through the outage and online after it (a slow exchange under load may flag a short overdue in between).
      assert.deepEqual([offline[0], offline.at(-1)], [true, false], `offline flags: ${offline.join(',')}`);
      await client.close();
      assert.equal(client.state, 'closed');
      const report = await rig.auditor.waitFor({ 'dev-states': range(1, 40) }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });

  it('spills when the memory queue passes its high-water mark', async () => {
    const dir = tempDir('highwater');
    try {
      const client = await open(options('dev-hw', dir.path, { highWater: { messages: 10 } }));
      rig.broker.pause();
      for (let n = 1; n <= 100; n++) client.publish('sensors/dev-hw', reading('dev-hw', n));
      await waitUntil(() => client.stats().spilled > 0, 5000);
      // The counter is shared memory; the state arrives as a message just after it, so wait for it.
      await waitUntil(() => client.state !== 'direct', 5000);
      rig.broker.resume();
      await client.drained();
      await client.close();
      const report = await rig.auditor.waitFor({ 'dev-hw': range(1, 100) }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('seqs increase by one and never repeat across restarts', async () => {
    const dir = tempDir('seq');
    try {
      const a = await open(options('dev-seq', dir.path));
      const s1 = a.publish('sensors/dev-seq', reading('dev-seq', 1));
      const s2 = a.publish('sensors/dev-seq', reading('dev-seq', 2));
      assert.equal(s2, s1 + 1);
      await a.close();
      const b = await open(options('dev-seq', dir.path));
      const s3 = b.publish('sensors/dev-seq', reading('dev-seq', 3));
      assert.ok(s3 > s2, `seq after restart (${s3}) is above the last one before (${s2})`);
      await b.drained();
      await b.close();
    } finally {
      dir.remove();
    }
  });
});
