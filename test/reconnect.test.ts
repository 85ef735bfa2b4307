/**
 * Reconnect backoff: the Backoff class on its own (floor, exponential cap, maxMs bound, reset, full
 * jitter), the reset after a stable connection, and a fleet of clients behind one link proxy, knocked
 * off together by a broker restart, whose backoff waits are drawn independently, so they do not return
 * all at once. The waits are judged as the clients drew them, not by timing them on a loaded machine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { open, type HoldfastClient } from 'holdfast';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { sleep, tempDir, waitUntil } from './helpers.js';
// Not exported from the package: the worker's own class, from the build.
import { Backoff } from '../packages/holdfast/dist/worker/backoff.js';

/** A random() that returns the given values in turn, then repeats the last. */
function draws(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

describe('Backoff', () => {
  it('never waits less than minMs, even on the lowest draw', () => {
    const b = new Backoff(250, 10_000, draws(0));
    for (let i = 0; i < 40; i++) assert.equal(b.next(), 250);
  });

  it('doubles its window each attempt: the highest draw is minMs·2^n', () => {
    const b = new Backoff(100, 100_000, draws(1));
    assert.deepEqual(Array.from({ length: 8 }, () => b.next()), [100, 200, 400, 800, 1600, 3200, 6400, 12800]);
  });

  it('never waits more than maxMs, however many attempts', () => {
    const b = new Backoff(100, 5000, draws(1));
    const delays = Array.from({ length: 200 }, () => b.next());
    assert.equal(Math.max(...delays), 5000);
    assert.deepEqual(delays.slice(6), new Array(194).fill(5000), 'capped from the 7th attempt on');
    assert.ok(delays.every(Number.isFinite));
  });

  it('draws uniformly inside the window (full jitter)', () => {
    const b = new Backoff(1000, 9000, draws(0.5));
    for (let i = 0; i < 4; i++) b.next();
    assert.equal(b.next(), 5000, 'window [1000, 9000] at attempt 4, midpoint draw');
    const real = new Backoff(100, 10_000);
    for (let i = 0; i < 10; i++) real.next();
    const sample = Array.from({ length: 2000 }, () => real.next());
    assert.ok(sample.every((d) => d >= 100 && d <= 10_000));
    assert.ok(Math.min(...sample) < 1000 && Math.max(...sample) > 9000, 'fills the window');
    assert.ok(new Set(sample).size > 500, 'not a handful of fixed values');
  });

  it('reset() starts again from minMs', () => {
    const b = new Backoff(100, 60_000, draws(1));
    for (let i = 0; i < 6; i++) b.next();
    assert.equal(b.attempt, 6);
    b.reset();
    assert.equal(b.attempt, 0);
    assert.equal(b.next(), 100);
    assert.equal(b.next(), 200);
  });
});

let broker: Broker;
let proxy: LinkProxy;
let protocol: 4 | 5;
before(async () => {
  broker = await startBroker();
  proxy = await startLinkProxy({ targetPort: broker.port });
  protocol = broker.protocolVersions.includes(5) ? 5 : 4;
});
after(async () => {
  await proxy.close();
  await broker.close();
});

describe('reconnecting clients', () => {
  it('resets the backoff after a connection stable for 10 s: the next wait is minMs', async () => {
    const dir = tempDir('reconnect-stable');
    const client = await open({ broker: proxy.url, clientId: 'reconnect-stable', cacheDir: dir.path, protocolVersion: protocol, reconnect: { minMs: 200, maxMs: 5000 }, connectTimeoutMs: 1000 });
    const delays: number[] = [];
    client.on('reconnecting', (e: { delayMs: number }) => delays.push(e.delayMs));
    try {
      await waitUntil(() => client.stats().connected, 10_000, 'connected');
      // Several failed attempts widen the window...
      await proxy.outage(2500);
      await waitUntil(() => client.stats().connected, 10_000, 'reconnected');
      assert.ok(delays.length >= 3, `several attempts during the outage (${delays.length})`);
      // ...and 10 s of a stable connection narrow it again.
      await sleep(10_500);
      const before = delays.length;
      await proxy.outage(300);
      await waitUntil(() => client.stats().connected, 10_000, 'reconnected again');
      assert.equal(delays[before], 200, `first wait after a stable connection is minMs (waits: ${delays.join(', ')})`);
    } finally {
      await client.close();
      dir.remove();
    }
  });

  // 50 clients are 50 worker threads; on a 2-core machine they start in about a second each batch.
  const FLEET = 50;
  const RECONNECT = { minMs: 500, maxMs: 4000 };

  it(`${FLEET} clients knocked off together wait independently drawn backoff delays before they return`, async (t) => {
    const dir = tempDir('reconnect-fleet');
    const clients: HoldfastClient[] = [];
    /** Each client's reconnect waits, as its own backoff drew them ('reconnecting' events). */
    const delays: number[][] = [];
    try {
      for (let i = 0; i < FLEET; i += 10) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(10, FLEET - i) }, (_, j) =>
            open({
              broker: proxy.url,
              clientId: `fleet-${i + j}`,
              cacheDir: `${dir.path}/c${i + j}`,
              protocolVersion: protocol,
              reconnect: RECONNECT,
              connectTimeoutMs: 5000,
              keepaliveSec: 60,
            }),
          ),
        );
        clients.push(...batch);
      }
      await waitUntil(() => clients.every((c) => c.stats().connected), 30_000, 'the fleet connected');
      for (const c of clients) {
        const own: number[] = [];
        delays.push(own);
        c.on('reconnecting', (e: { delayMs: number }) => own.push(e.delayMs));
      }

      // A broker restart knocks every client off at the same instant: the worst case for a thundering
      // herd. It stays down until every client has failed again, so each has drawn from a wider window.
      await broker.stop();
      await waitUntil(() => delays.every((d) => d.length >= 3), 30_000, 'three backoff waits from every client');
      await broker.start();
      await waitUntil(() => clients.every((c) => c.stats().connected), 30_000, 'the fleet reconnected');

      for (const [i, own] of delays.entries()) {
        // Never below the floor (no tight loop), never above the cap.
        own.forEach((d, n) => assert.ok(d >= RECONNECT.minMs && d <= RECONNECT.maxMs, `fleet-${i} wait ${n}: ${d} ms`));
        assert.equal(clients[i]!.stats().reconnects, 1, `fleet-${i} reconnected once`);
      }
      // Full jitter: the same attempt gets a different draw on each client, not one shared schedule.
      const second = delays.map((d) => d[1]!);
      const third = delays.map((d) => d[2]!);
      const distinct = (xs: number[]): number => new Set(xs).size;
      assert.ok(distinct(second) > FLEET / 2, `second waits drawn independently: ${second.join(' ')}`);
      assert.ok(distinct(third) > FLEET / 2, `third waits drawn independently: ${third.join(' ')}`);
      const waited = delays.map((d) => d.slice(0, 3).reduce((a, b) => a + b, 0));
      const spread = Math.max(...waited) - Math.min(...waited);
      assert.ok(spread >= RECONNECT.minMs, `three waits add up to different times across the fleet (spread ${spread} ms)`);
      t.diagnostic(`three waits per client, in ms: ${waited.sort((a, b) => a - b).join(' ')}`);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      dir.remove();
    }
  });
});
