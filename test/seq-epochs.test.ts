/**
 * Seqs are epoch·2^32 + counter, and every open() (and worker restart) durably reserves an epoch. Past
 * MAX_EPOCH (2^21 − 1) a seq would no longer be a safe integer, so publish() must refuse with
 * HOLDFAST_SEQ_EXHAUSTED instead of handing out seqs that collide or lose precision, while what the cache
 * holds is still delivered.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { open, ErrorCodes, HoldfastError, type HoldfastOptions } from 'holdfast';
import { injectFault, restartEvents, within } from './fault-hook.js';
import { auditedBrokerWithProxy, tempDir, waitUntil } from './helpers.js';

const MAX_EPOCH = 2 ** 21 - 1;
const OFFLINE = 'mqtt://127.0.0.1:1';

const rig = auditedBrokerWithProxy();

/** Sets the cache's last reserved epoch, as that many opens before would have. */
async function setEpoch(cacheDir: string, epoch: number): Promise<void> {
  const root = openLmdb({ path: join(cacheDir, 'cache.mdb'), maxDbs: 8, noSubdir: true });
  root.openDB({ name: 'meta', encoding: 'msgpack' }).putSync('epoch', epoch);
  await root.close();
}

it('the last epoch still gives safe seqs; past it, open() still delivers what the cache holds, and publish() refuses with HOLDFAST_SEQ_EXHAUSTED', async () => {
  const device = 'dev-epochs';
  const dir = tempDir('epochs');
  const options = (broker: string): HoldfastOptions => ({ broker, clientId: device, cacheDir: dir.path, protocolVersion: rig.protocol, reconnect: { minMs: 100, maxMs: 500 } });
  try {
    await (await open(options(OFFLINE))).close();
    await setEpoch(dir.path, MAX_EPOCH - 1);

    // The last epoch: its seqs are safe integers. Offline, its readings wait in the cache.
    const last = await open(options(OFFLINE));
    const seqs = Array.from({ length: 5 }, (_, i) => last.publish(`sensors/${device}`, JSON.stringify({ device, n: i + 1 })));
    await last.flush();
    await last.close();
    assert.equal(seqs[0], MAX_EPOCH * 2 ** 32 + 1);
    assert.ok(seqs.every((seq) => Number.isSafeInteger(seq)));

    const past = await open(options(rig.proxy.url));
    try {
      assert.throws(
        () => past.publish(`sensors/${device}`, JSON.stringify({ device, n: 6 })),
        (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.SEQ_EXHAUSTED && /new clientId/.test(err.message) && /still delivers/.test(err.message),
      );
      await within(past.drained(), 20_000, 'drained()');
    } finally {
      await past.close();
    }
    const report = await rig.auditor.waitFor({ [device]: [1, 2, 3, 4, 5] }, 20_000);
    assert.deepEqual({ lost: report.devices[device]!.lost, duplicates: report.devices[device]!.duplicates }, { lost: 0, duplicates: 0 });
    assert.deepEqual(rig.auditor.arrivals(device), [1, 2, 3, 4, 5], 'nothing past the last epoch went out');
  } finally {
    dir.remove();
  }
});

it('a worker restart in the last epoch keeps the client running: the facade still hands out its own safe seqs, and nothing accepted is stranded', async () => {
  const device = 'dev-epochs-restart';
  const dir = tempDir('epochs-restart');
  const live: HoldfastOptions = { broker: rig.proxy.url, clientId: device, cacheDir: dir.path, protocolVersion: rig.protocol, durability: 'journal', reconnect: { minMs: 100, maxMs: 500 } };
  try {
    await (await open(live)).close();
    await setEpoch(dir.path, MAX_EPOCH - 1);
    const client = await open(live);
    const restarts = restartEvents(client);
    const failures: string[] = [];
    client.on('error', (err: HoldfastError) => {
      if (err.code !== ErrorCodes.WORKER_CRASHED) failures.push(`${err.code}: ${err.message}`);
    });
    rig.broker.pause();
    const before = Array.from({ length: 20 }, (_, i) => client.publish(`sensors/${device}`, JSON.stringify({ device, n: i + 1 })));
    injectFault(client, 'throw');
    await waitUntil(() => restarts.length > 0 && client.state !== 'restarting', 20_000, 'the restart to settle');
    assert.notEqual(client.state, 'failed', `the replacement worker was refused: ${failures.join('; ')}`);
    const after = Array.from({ length: 20 }, (_, i) => client.publish(`sensors/${device}`, JSON.stringify({ device, n: i + 21 })));
    assert.ok([...before, ...after].every((seq) => Number.isSafeInteger(seq) && seq > MAX_EPOCH * 2 ** 32), 'seqs stay in the last epoch');
    rig.broker.resume();
    await within(client.drained(), 30_000, 'drained()');
    await client.close();
    await rig.auditor.waitFor({ [device]: Array.from({ length: 40 }, (_, i) => i + 1) }, 20_000);
  } finally {
    rig.broker.resume();
    dir.remove();
  }
});
