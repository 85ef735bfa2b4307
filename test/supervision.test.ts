/**
 * Guarantee 10: the worker is never a single point of failure. A worker killed by the test-only
 * fault hook (an uncaught exception, process.exit, its heap limit, a blocked event loop) is restarted
 * on the same cache while publish() keeps accepting; spill mode reports exactly what died in its
 * memory, journal mode loses nothing and replays nothing twice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { open, startHealthServer, ErrorCodes, HoldfastError, type ClientState, type HoldfastClient, type HoldfastOptions, type IncomingMessage } from 'holdfast';
import { assertInOrderOnce, assertMissingExactly, injectFault, restartEvents, within, type FaultKind } from './fault-hook.js';
import { auditedBrokerWithProxy, fillDisk, needsRoot, skipUnlessCI, sleep, tempDir, tinyTmpfs, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, reconnect: { minMs: 100, maxMs: 500 }, connectTimeoutMs: 1000, keepaliveSec: 5, ...extra };
}

/** Publishes readings `from`..`to` of `device`, recording each one's seq. */
function publishRange(client: HoldfastClient, device: string, from: number, to: number, seqOf: Map<number, number>): void {
  for (let n = from; n <= to; n++) seqOf.set(n, client.publish(`sensors/${device}`, JSON.stringify({ device, n })));
}

const until = (client: HoldfastClient, state: ClientState): Promise<void> => waitUntil(() => client.state === state, 20_000, `state '${state}'`);

describe('supervision: the worker is restarted on the same cache', () => {
  it('spill mode: a crash loses only what was in the worker memory, reported by seq range; publish() keeps accepting', async () => {
    const device = 'dev-crash-spill';
    const dir = tempDir('crash-spill');
    const seqOf = new Map<number, number>();
    try {
      // A long timeoutMs: readings stay in the worker's memory while the broker is hung.
      const client = await open(options(device, dir.path, { timeoutMs: 60_000 }));
      const restarts = restartEvents(client);
      publishRange(client, device, 1, 50, seqOf);
      await client.drained();
      rig.broker.pause();
      publishRange(client, device, 51, 150, seqOf);
      await waitUntil(() => client.stats().memoryQueued + client.stats().inflight === 100, 10_000, 'the worker to hold 51..150');
      injectFault(client, 'throw');
      await until(client, 'restarting');
      // Accepted while no worker runs: they wait on the facade and go to the new worker.
      publishRange(client, device, 151, 250, seqOf);
      await waitUntil(() => restarts.length === 1 && client.state !== 'restarting', 20_000, 'the restart');

      const [restart] = restarts;
      assert.match(restart!.cause, /holdfast test fault: uncaught exception/);
      assert.deepEqual(restart!.lost, { count: 100, ranges: [[seqOf.get(51)!, seqOf.get(150)!]] }, 'exactly the readings only the dead worker held');
      const s = client.stats();
      assert.equal(s.workerRestarts, 1);
      assert.equal(s.lostInWorkerCrashes, 100);
      assert.deepEqual(s.lostInWorkerCrashesRanges, restart!.lost.ranges, 'stats() names the same seqs');
      assert.ok(seqOf.get(151)! > seqOf.get(150)!, 'seqs keep increasing across the restart');

      rig.broker.resume();
      await within(client.drained(), 30_000, 'drained()');
      await client.close();
      await rig.auditor.waitFor({ [device]: [...seqOf.keys()].filter((n) => n <= 50 || n > 150) }, 20_000);
      const arrived = rig.auditor.arrivals(device);
      assertInOrderOnce(arrived);
      assertMissingExactly(seqOf, arrived, restart!.lost);
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('spill mode: what was spilled survives the crash; the cache drains first, nothing lost or duplicated', async () => {
    const device = 'dev-crash-cached';
    const dir = tempDir('crash-cached');
    const seqOf = new Map<number, number>();
    try {
      const client = await open(options(device, dir.path, { timeoutMs: 300 }));
      const restarts = restartEvents(client);
      publishRange(client, device, 1, 10, seqOf);
      await client.drained();
      rig.broker.pause();
      publishRange(client, device, 11, 100, seqOf);
      // The stuck exchange times out: the pending stream and the packet in flight go to LMDB.
      await until(client, 'caching');
      await client.flush();
      injectFault(client, 'exit');
      await until(client, 'restarting');
      publishRange(client, device, 101, 150, seqOf);
      await waitUntil(() => client.state !== 'restarting', 20_000, 'the restart');
      assert.equal(restarts[0]!.lost.count, 0, 'everything the dead worker held was in the cache');
      assert.match(restarts[0]!.cause, /process.exit\(70\)/);
      assert.equal(client.state, 'draining', 'the new worker starts on the cached backlog');
      rig.broker.resume();
      await within(client.drained(), 30_000, 'drained()');
      await client.close();
      const report = await rig.auditor.waitFor({ [device]: seqOf.keys() }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('journal mode: crashes of every kind lose nothing, and nothing is replayed twice', async () => {
    const device = 'dev-crash-journal';
    const dir = tempDir('crash-journal');
    const seqOf = new Map<number, number>();
    try {
      const client = await open(options(device, dir.path, { durability: 'journal', timeoutMs: 1000 }));
      const restarts = restartEvents(client);
      let n = 0;
      const kinds: FaultKind[] = ['throw', 'exit', 'oom'];
      for (const kind of kinds) {
        publishRange(client, device, n + 1, n + 100, seqOf);
        n += 100;
        injectFault(client, kind);
        await until(client, 'restarting');
        // Written to the intake log now, while the new worker reads it: it must not replay these.
        publishRange(client, device, n + 1, n + 100, seqOf);
        n += 100;
        await waitUntil(() => client.state !== 'restarting', 30_000, `the restart after '${kind}'`);
      }
      assert.deepEqual(
        restarts.map((r) => r.lost.count),
        [0, 0, 0],
      );
      assert.match(restarts[2]!.cause, /memory limit/);
      await within(client.drained(), 30_000, 'drained()');
      await client.close();
      const report = await rig.auditor.waitFor({ [device]: seqOf.keys() }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
      assert.equal(client.stats().lostInWorkerCrashes, 0);
      assert.deepEqual(client.stats().lostInWorkerCrashesRanges, []);
    } finally {
      dir.remove();
    }
  });

  it('a worker that dies while LMDB commits never takes the process down', async () => {
    // Before worker/fatal.ts, a worker ending on the spot with lmdb-js's writer thread mid-commit
    // crashed this whole process with SIGSEGV within a few deaths.
    const device = 'dev-crash-commits';
    const dir = tempDir('crash-commits');
    const seqOf = new Map<number, number>();
    let client: HoldfastClient | undefined;
    try {
      const c = (client = await open(options(device, dir.path, { durability: 'journal', timeoutMs: 1000 })));
      const restarts = restartEvents(c);
      for (let i = 0; i < 8; i++) {
        // A burst, posted (at the end of this tick) just before the fault: its commit runs as the worker dies.
        publishRange(c, device, seqOf.size + 1, seqOf.size + 500, seqOf);
        await Promise.resolve();
        injectFault(c, i % 2 === 0 ? 'throw' : 'exit');
        await until(c, 'restarting');
        publishRange(c, device, seqOf.size + 1, seqOf.size + 100, seqOf);
        await waitUntil(() => restarts.length === i + 1 && c.state !== 'restarting', 20_000, `restart ${i + 1}`);
        await sleep(200);
      }
      await within(c.drained(), 90_000, 'drained()');
      await c.close();
      const report = await rig.auditor.waitFor({ [device]: seqOf.keys() }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      await client?.close().catch(() => undefined);
      dir.remove();
    }
  });

  it('subscriptions and requests the dead worker never answered carry over to the new one', async () => {
    const device = 'dev-crash-requests';
    const dir = tempDir('crash-requests');
    const seqOf = new Map<number, number>();
    const sender = await mqtt.connectAsync(rig.broker.url, { protocolVersion: rig.protocol });
    try {
      // A clean session: the broker forgets subscriptions with the connection, so only the new worker's own count.
      const client = await open(options(device, dir.path, { timeoutMs: 60_000, session: { clean: true } }));
      const received: string[] = [];
      client.subscribe(`devices/${device}/cmd`, (msg: IncomingMessage) => received.push(msg.payload.toString()));
      publishRange(client, device, 1, 5, seqOf);
      await client.drained();
      await rig.proxy.refuse(true);
      publishRange(client, device, 6, 10, seqOf);
      // Asked of the worker that is about to die; answered by the next one.
      const drained = client.drained();
      injectFault(client, 'throw');
      await until(client, 'restarting');
      await rig.proxy.refuse(false);
      await within(drained, 30_000, 'the drained() asked before the crash');
      // Delivered on the new worker's connection, after the SUBSCRIBE it sends on connecting.
      publishRange(client, device, 11, 12, seqOf);
      await within(client.drained(), 30_000, 'drained()');
      await sender.publishAsync(`devices/${device}/cmd`, 'reboot', { qos: 1 });
      await waitUntil(() => received.length === 1, 10_000, 'the command, through the subscription made before the crash');
      assert.deepEqual(received, ['reboot']);
      await client.close();
    } finally {
      await rig.proxy.refuse(false);
      await sender.endAsync();
      dir.remove();
    }
  });

  it('a blocked worker event loop is detected and the worker replaced', async () => {
    const device = 'dev-hang';
    const dir = tempDir('hang');
    const seqOf = new Map<number, number>();
    try {
      const client = await open(options(device, dir.path, { durability: 'journal', timeoutMs: 1000 }));
      const restarts = restartEvents(client);
      publishRange(client, device, 1, 20, seqOf);
      await client.drained();
      injectFault(client, 'hang');
      publishRange(client, device, 21, 40, seqOf);
      await waitUntil(() => restarts.length === 1, 40_000, 'the hung worker to be replaced');
      assert.match(restarts[0]!.cause, /event loop was blocked/);
      await within(client.drained(), 30_000, 'drained()');
      await client.close();
      const report = await rig.auditor.waitFor({ [device]: seqOf.keys() }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      dir.remove();
    }
  });

  it('a worker dying on a full disk is restarted on it, and delivers once there is room again', async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const device = 'dev-crash-full';
    const disk = tinyTmpfs('crash-full');
    const filler = join(disk.path, 'filler');
    const seqOf = new Map<number, number>();
    try {
      const client = await open(options(device, join(disk.path, 'cache'), { timeoutMs: 60_000 }));
      const restarts = restartEvents(client);
      publishRange(client, device, 1, 10, seqOf);
      await client.drained();
      fillDisk(filler);
      injectFault(client, 'throw');
      await until(client, 'restarting');
      publishRange(client, device, 11, 20, seqOf);
      await waitUntil(() => client.state !== 'restarting', 20_000, 'the restart on a full disk');
      assert.notEqual(client.state, 'failed', restarts.map((r) => r.cause).join('; '));
      rmSync(filler);
      await within(client.drained(), 30_000, 'drained()');
      await client.close();
      const report = await rig.auditor.waitFor({ [device]: seqOf.keys() }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      disk.remove();
    }
  });

  it('a worker that cannot be restarted: state failed, its own code, /health unhealthy, and HOLDFAST_CLOSED only after close()', async () => {
    const device = 'dev-failed';
    const dir = tempDir('failed');
    const seqOf = new Map<number, number>();
    const cacheDir = join(dir.path, 'cache');
    let health: { port: number; close(): Promise<void> } | undefined;
    try {
      const client = await open(options(device, cacheDir));
      health = await startHealthServer(client, { port: 0, cacheDir: dir.path });
      const failed: Array<{ attempts: number; cause: string; lost: { count: number } }> = [];
      client.on('worker-failed', (e: (typeof failed)[number]) => failed.push(e));
      const errors: HoldfastError[] = [];
      client.on('error', (e: HoldfastError) => errors.push(e));
      publishRange(client, device, 1, 10, seqOf);
      await client.drained();
      // The cache directory is gone and a file is in its way: no replacement worker can open it.
      renameSync(cacheDir, join(dir.path, 'moved'));
      writeFileSync(cacheDir, 'not a directory');
      injectFault(client, 'throw');
      await until(client, 'restarting');
      publishRange(client, device, 11, 15, seqOf);
      assert.equal(client.stats().memoryQueued, 5, 'held on the facade while no worker runs');
      await until(client, 'failed');

      assert.equal(failed.length, 1);
      assert.equal(failed[0]!.attempts, 5);
      assert.match(failed[0]!.cause, /cannot create cache directory/);
      assert.equal(failed[0]!.lost.count, 5, 'what waited for a worker is lost, and counted');
      assert.ok(errors.some((e) => e.code === ErrorCodes.WORKER_FAILED));
      assert.throws(() => client.publish(`sensors/${device}`, 'x'), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.WORKER_FAILED);
      await assert.rejects(client.flush(), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.WORKER_FAILED);
      const s = client.stats();
      assert.equal(s.state, 'failed');
      assert.match(s.workerFailure ?? '', /could not be restarted/);

      const res = await fetch(`http://127.0.0.1:${health.port}/health`);
      const body = (await res.json()) as { status: string; reasons: string[] };
      assert.equal(res.status, 503);
      assert.equal(body.status, 'unhealthy');
      assert.ok(body.reasons.some((r) => /^worker failed: .*cannot create cache directory/.test(r)), body.reasons.join('; '));

      await assert.rejects(client.close(), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.WORKER_FAILED);
      assert.throws(() => client.publish(`sensors/${device}`, 'x'), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.CLOSED);
    } finally {
      await health?.close();
      dir.remove();
    }
  });

  it('without HOLDFAST_TEST_HOOKS=1 at open() there is no fault hook', async () => {
    const dir = tempDir('nohooks');
    delete process.env.HOLDFAST_TEST_HOOKS;
    try {
      const client = await open(options('dev-nohooks', dir.path));
      assert.equal(Symbol.for('holdfast.test.injectWorkerFault') in client, false);
      await client.close();
    } finally {
      process.env.HOLDFAST_TEST_HOOKS = '1';
      dir.remove();
    }
  });
});
