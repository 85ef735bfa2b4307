/**
 * Seqs are epoch·2^32 + counter, and every open() (and worker restart) durably reserves an epoch. Past
 * MAX_EPOCH (2^21 − 1) a seq would no longer be a safe integer, so open() must refuse with
 * HOLDFAST_SEQ_EXHAUSTED instead of handing out seqs that collide or lose precision.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { open, ErrorCodes, HoldfastError, type HoldfastOptions } from 'holdfast';
import { injectFault, restartEvents, within } from './fault-hook.js';
import { auditedBrokerWithProxy, tempDir, waitUntil } from './helpers.js';

const MAX_EPOCH = 2 ** 21 - 1;
const options = (cacheDir: string): HoldfastOptions => ({ broker: 'mqtt://127.0.0.1:1', clientId: 'dev-epochs', cacheDir, reconnect: { minMs: 1000, maxMs: 1000 } });

const rig = auditedBrokerWithProxy();

/** Sets the cache's last reserved epoch, as that many opens before would have. */
async function setEpoch(cacheDir: string, epoch: number): Promise<void> {
  const root = openLmdb({ path: join(cacheDir, 'cache.mdb'), maxDbs: 8, noSubdir: true });
  root.openDB({ name: 'meta', encoding: 'msgpack' }).putSync('epoch', epoch);
  await root.close();
}

it('the last epoch still gives safe seqs; the open after it is refused with HOLDFAST_SEQ_EXHAUSTED and lets go of the cacheDir', async () => {
  const dir = tempDir('epochs');
  try {
    await (await open(options(dir.path))).close();
    await setEpoch(dir.path, MAX_EPOCH - 1);

    const last = await open(options(dir.path));
    const seq = last.publish('sensors/dev-epochs', 'x');
    await last.close();
    assert.equal(seq, MAX_EPOCH * 2 ** 32 + 1);
    assert.ok(Number.isSafeInteger(seq));

    const err = await open(options(dir.path)).then(
      async (client) => {
        await client.close();
        return assert.fail('open() succeeded past the last seq epoch');
      },
      (e: unknown) => e,
    );
    assert.ok(err instanceof HoldfastError, String(err));
    assert.equal(err.code, ErrorCodes.SEQ_EXHAUSTED);
    assert.match(err.message, /new clientId/);

    // The refused open let go of the lock: a cache with epochs left opens again.
    await setEpoch(dir.path, 7);
    const again = await open(options(dir.path));
    assert.equal(again.publish('sensors/dev-epochs', 'y'), 8 * 2 ** 32 + 1);
    await again.close();
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
