/**
 * Reconnect backoff: the Backoff class on its own (floor, exponential cap, maxMs bound, reset, full
 * jitter), the reset after a stable connection, and a fleet of clients behind one link proxy that
 * spread their reconnection attempts after a broker restart instead of returning all at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { open, type HoldfastClient } from 'holdfast';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { sleep, tempDir } from './helpers.js';
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

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('reconnecting clients', () => {
  it('resets the backoff after a connection stable for 10 s: the next wait is minMs', async () => {
    const dir = tempDir('reconnect-stable');
    const client = await open({ broker: proxy.url, clientId: 'reconnect-stable', cacheDir: dir.path, protocolVersion: protocol, reconnect: { minMs: 200, maxMs: 5000 }, connectTimeoutMs: 1000 });
    const delays: number[] = [];
    client.on('reconnecting', (e: { delayMs: number }) => delays.push(e.delayMs));
    try {
      await until('connected', () => client.stats().connected, 10_000);
      // Several failed attempts widen the window...
      await proxy.outage(2500);
      await until('reconnected', () => client.stats().connected, 10_000);
      assert.ok(delays.length >= 3, `several attempts during the outage (${delays.length})`);
      // ...and 10 s of a stable connection narrow it again.
      await sleep(10_500);
      const before = delays.length;
      await proxy.outage(300);
      await until('reconnected again', () => client.stats().connected, 10_000);
      assert.equal(delays[before], 200, `first wait after a stable connection is minMs (waits: ${delays.join(', ')})`);
    } finally {
      await client.close();
      dir.remove();
    }
  });

  // 50 clients are 50 worker threads; on a 2-core machine they start in about a second each batch.
  const FLEET = 50;
  const RECONNECT = { minMs: 500, maxMs: 4000 };

  it(`${FLEET} clients spread their reconnection attempts after a broker restart`, async (t) => {
    const dir = tempDir('reconnect-fleet');
    const clients: HoldfastClient[] = [];
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
      await until('the fleet connected', () => clients.every((c) => c.stats().connected), 30_000);

      // A broker restart knocks every client off at the same instant: the worst case for a thundering
      // herd. Attempts are measured at the proxy in front of it, from the moment the broker is back.
      await broker.stop();
      await sleep(3000);
      // Measured from just before the broker starts: a fast client may connect while start() returns.
      const reopenedAt = Date.now();
      const firstAttempt = proxy.attempts.length;
      await broker.start();
      await until('the fleet reconnected', () => clients.every((c) => c.stats().connected), 30_000);
      const attempts = proxy.attempts.slice(firstAttempt).map((t) => t - reopenedAt);

      assert.ok(attempts.length >= FLEET, `every client came back (${attempts.length} attempts)`);
      const first = attempts.slice(0, FLEET).sort((a, b) => a - b);
      const spread = first[first.length - 1]! - first[0]!;
      let busiest = 0;
      for (let i = 0, j = 0; i < first.length; i++) {
        while (first[i]! - first[j]! > 100) j++;
        busiest = Math.max(busiest, i - j + 1);
      }
      const summary = `spread ${spread} ms, at most ${busiest} of ${FLEET} in any 100 ms, offsets ${first.map((t) => Math.round(t)).join(' ')}`;
      assert.ok(busiest <= FLEET / 2, `not all at once: ${summary}`);
      assert.ok(spread >= RECONNECT.maxMs / 4, `the attempts span a good part of the backoff window: ${summary}`);
      for (const c of clients) assert.equal(c.stats().reconnects, 1);
      t.diagnostic(summary);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      dir.remove();
    }
  });
});
