/**
 * Guarantee 10: close() while the supervisor replaces a dead worker. The test-only 'slow-restart'
 * fault makes the replacement wait before it opens the cache, so close() lands in the middle of the
 * restart every time:
 * - a restart that ends within close()'s budget: the client keeps the cacheDir lock until the
 *   replacement is up (a second client is refused meanwhile), then closes it cleanly;
 * - a restart longer than the budget: close() gives up at closeTimeoutMs + 2 s with HOLDFAST_TIMEOUT
 *   naming what waited for the replacement, and the lock goes only once that replacement is stopped.
 * An independent subscriber checks that exactly the readings reported lost never arrived.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open, ErrorCodes, HoldfastError, type ClientState, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { assertInOrderOnce, assertMissingExactly, drainAgain, injectFault, restartEvents, within, type Lost } from './fault-hook.js';
import { auditedBrokerWithProxy, tempDir, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();
/** close()'s own grace beyond closeTimeoutMs (shutdown.ts). */
const CLOSE_GRACE_MS = 2000;

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, timeoutMs: 1000, reconnect: { minMs: 100, maxMs: 500 }, connectTimeoutMs: 1000, keepaliveSec: 5, ...extra };
}

function publishRange(client: HoldfastClient, device: string, from: number, to: number, seqOf: Map<number, number>): void {
  for (let n = from; n <= to; n++) seqOf.set(n, client.publish(`sensors/${device}`, JSON.stringify({ device, n })));
}

const until = (client: HoldfastClient, state: ClientState): Promise<void> => waitUntil(() => client.state === state, 20_000, `state '${state}'`);
const lockFile = (cacheDir: string): string => join(cacheDir, 'holdfast.lock');

/** A second client on the same cacheDir must be refused with HOLDFAST_CACHE_LOCKED. */
async function assertSecondClientRefused(cacheDir: string): Promise<void> {
  const second = await open(options('dev-intruder', cacheDir)).then(
    (client) => client,
    (err: unknown) => err,
  );
  if (!(second instanceof Error)) {
    await (second as HoldfastClient).close().catch(() => undefined);
    assert.fail('a second client opened the cacheDir while the first one still had a worker starting on it');
  }
  assert.ok(second instanceof HoldfastError, String(second));
  assert.equal(second.code, ErrorCodes.CACHE_LOCKED, second.message);
}

/** Crashes the worker with every replacement armed to start `slowMs` late; resolves once it is restarting. */
async function crashWithSlowRestart(client: HoldfastClient, slowMs: number): Promise<void> {
  injectFault(client, 'slow-restart', slowMs);
  injectFault(client, 'throw');
  await until(client, 'restarting');
}


describe('close() during a worker restart', () => {
  it("validates 'slow-restart': ms is a whole number from 1 to 600000", async () => {
    const dir = tempDir('slow-restart-args');
    let client: HoldfastClient | undefined;
    try {
      client = await open(options('dev-slow-args', dir.path));
      for (const ms of [undefined, 0, -1, 1.5, 600_001, '100']) {
        assert.throws(
          () => injectFault(client!, 'slow-restart', ms as number),
          (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_ARGUMENT && err.details?.field === 'ms' && /'slow-restart', ms\): ms must be a whole number from 1 to 600000/.test(err.message),
          `ms ${String(ms)}`,
        );
      }
      // Armed for replacements only: the running worker carries on.
      injectFault(client, 'slow-restart', 600_000);
      client.publish('sensors/dev-slow-args', JSON.stringify({ device: 'dev-slow-args', n: 1 }));
      await within(client.drained(), 10_000, 'drained()');
      assert.equal(client.stats().workerRestarts, 0);
      await client.close();
    } finally {
      await client?.close().catch(() => undefined);
      dir.remove();
    }
  });

  it('journal: a restart within the budget keeps the lock until the replacement is up, which close() then closes; nothing lost', async () => {
    const device = 'dev-close-slow-restart';
    const dir = tempDir('close-slow-restart');
    const seqOf = new Map<number, number>();
    const slowMs = 4000;
    const closeTimeoutMs = 15_000;
    let client: HoldfastClient | undefined;
    try {
      client = await open(options(device, dir.path, { durability: 'journal', closeTimeoutMs }));
      const restarts = restartEvents(client);
      publishRange(client, device, 1, 50, seqOf);
      await client.drained();
      await crashWithSlowRestart(client, slowMs);
      // Accepted while no worker runs: the intake log has them, the replacement gets them.
      publishRange(client, device, 51, 100, seqOf);

      let settled = false;
      const started = performance.now();
      const closing = client.close().finally(() => (settled = true));
      assert.ok(existsSync(lockFile(dir.path)), 'the lock is kept while the replacement starts');
      await assertSecondClientRefused(dir.path);
      assert.equal(client.state, 'restarting', 'the second client was refused while the replacement was still starting');
      assert.equal(settled, false);

      await within(closing, closeTimeoutMs + CLOSE_GRACE_MS + 5000, 'close()');
      assert.ok(performance.now() - started >= slowMs - 1000, 'close() waited for the replacement');
      assert.equal(existsSync(lockFile(dir.path)), false, 'the lock is gone once close() resolved');
      assert.equal(restarts.length, 1);
      assert.equal(restarts[0]!.lost.count, 0);
      await waitUntil(() => rig.proxy.connections === 0, 10_000, 'the replacement worker to disconnect');

      await drainAgain(options(device, dir.path, { durability: 'journal' }));
      const report = await rig.auditor.waitFor({ [device]: seqOf.keys() }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      await client?.close().catch(() => undefined);
      dir.remove();
    }
  });

  for (const durability of ['spill', 'journal'] as const) {
    it(`${durability}: a restart longer than the budget: HOLDFAST_TIMEOUT at closeTimeoutMs + 2 s names what waited; the lock goes once the replacement is stopped`, async () => {
      const device = `dev-close-restart-timeout-${durability}`;
      const dir = tempDir(`close-restart-timeout-${durability}`);
      const seqOf = new Map<number, number>();
      const slowMs = 10_000;
      const closeTimeoutMs = 1000;
      const budgetMs = closeTimeoutMs + CLOSE_GRACE_MS;
      let client: HoldfastClient | undefined;
      try {
        client = await open(options(device, dir.path, { durability, closeTimeoutMs }));
        const restarts = restartEvents(client);
        publishRange(client, device, 1, 20, seqOf);
        await client.drained();
        await crashWithSlowRestart(client, slowMs);
        // They wait on the facade for a worker that will not be up before close() gives up.
        publishRange(client, device, 21, 60, seqOf);

        const started = performance.now();
        const err = await within(client.close(), budgetMs + 5000, 'close()').then(
          () => assert.fail('close() resolved although it could not close the worker'),
          (e: unknown) => e,
        );
        const elapsedMs = performance.now() - started;
        assert.ok(err instanceof HoldfastError, String(err));
        assert.equal(err.code, ErrorCodes.TIMEOUT, err.message);
        assert.ok(elapsedMs >= budgetMs - 100, `close() gave up after ${Math.round(elapsedMs)} ms, before its budget of ${budgetMs} ms`);
        assert.ok(elapsedMs < budgetMs + 1000, `close() took ${Math.round(elapsedMs)} ms (budget ${budgetMs} ms)`);
        const lost = err.details?.lost as Lost;
        if (durability === 'spill') {
          assert.deepEqual(lost, { count: 40, ranges: [[seqOf.get(21)!, seqOf.get(60)!]] }, 'exactly what waited for the replacement');
          assert.match(err.message, /^close\(\) timed out while the worker was restarting; lost: 40 readings \(seqs \d+-\d+\)$/);
        } else {
          assert.deepEqual(lost, { count: 0, ranges: [] }, 'the intake log has every reading');
          assert.match(err.message, /^close\(\) timed out while the worker was restarting; nothing was lost/);
        }
        assert.equal(restarts.length, 1);
        assert.equal(restarts[0]!.lost.count, 0, 'everything before the crash was delivered');
        assert.throws(() => client!.publish(`sensors/${device}`, 'x'), (e: unknown) => e instanceof HoldfastError && e.code === ErrorCodes.CLOSED);

        // The replacement is still starting and will have the cache open: no other client yet.
        assert.ok(existsSync(lockFile(dir.path)), 'the lock is kept while the replacement starts');
        await assertSecondClientRefused(dir.path);
        // Once its start settles it is terminated, and only then is the lock let go.
        await waitUntil(() => !existsSync(lockFile(dir.path)), slowMs + 20_000, 'the lock to go once the replacement is stopped');
        // A replacement left running would stay connected to the broker.
        await waitUntil(() => rig.proxy.connections === 0, 10_000, 'no worker of the closed client connected');

        await drainAgain(options(device, dir.path, { durability }));
        const expected = durability === 'spill' ? [...seqOf.keys()].filter((n) => n <= 20) : seqOf.keys();
        await rig.auditor.waitFor({ [device]: expected }, 20_000);
        const arrived = rig.auditor.arrivals(device);
        assertInOrderOnce(arrived);
        assertMissingExactly(seqOf, arrived, lost);
      } finally {
        await client?.close().catch(() => undefined);
        dir.remove();
      }
    });
  }
});
