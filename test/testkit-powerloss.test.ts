/**
 * The testkit's power-loss layer (packages/testkit/native/powerloss-fs/): a power cut keeps what was
 * synced and drops everything else, data and names, while reads before the cut see every write.
 * LMDB, opened as holdfast's cache opens it: a commit that resolved survives a cut in the same tick;
 * with noSync nothing does, although the process read it all back through its map before the cut.
 */
import assert from 'node:assert/strict';
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { spawnDevice, type PowerLossLayer } from '@holdfast/testkit';
import { powerLossLayer } from './helpers.js';

const lmdbFixture = fileURLToPath(new URL('./fixtures/lmdb-commits.ts', import.meta.url));

function write(path: string, text: string, opts: { sync?: boolean; flags?: string | number } = {}): void {
  const fd = openSync(path, opts.flags ?? 'w', 0o600);
  try {
    writeSync(fd, text);
    if (opts.sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync() of a directory: what makes the names in it durable. */
function syncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const read = (path: string): string | undefined => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);

async function withLayer(t: Parameters<typeof powerLossLayer>[0], body: (layer: PowerLossLayer) => Promise<void>): Promise<void> {
  const layer = await powerLossLayer(t);
  if (!layer) return;
  try {
    await body(layer);
  } finally {
    await layer.close();
  }
}

describe('power-loss layer: files', () => {
  it('written and fsynced survives a cut; written since the last fsync is gone, though reads saw it', (t) =>
    withLayer(t, async (layer) => {
      const file = join(layer.path, 'a');
      write(file, 'synced', { sync: true });
      syncDir(layer.path);
      write(file, ' and more', { flags: 'a' });
      const middle = openSync(file, 'r+');
      writeSync(middle, 'SY', 0, 'utf8');
      closeSync(middle);
      assert.equal(read(file), 'SYnced and more', 'unsynced writes are visible until the cut');
      assert.ok(layer.stats().unsyncedBytes > 0);
      const atCut = await layer.powerCut();
      assert.equal(atCut.pendingOps, 0);
      assert.equal(read(file), 'synced');
      assert.equal(layer.stats().unsyncedBytes, 0);
    }));

  it('a file created and never synced, nor its directory, is gone; a directory fsync keeps its name but not its data', (t) =>
    withLayer(t, async (layer) => {
      write(join(layer.path, 'never'), 'lost');
      mkdirSync(join(layer.path, 'dir'));
      write(join(layer.path, 'dir', 'named'), 'data not synced');
      assert.equal(read(join(layer.path, 'never')), 'lost');
      await layer.powerCut();
      assert.equal(existsSync(join(layer.path, 'never')), false);
      assert.equal(existsSync(join(layer.path, 'dir')), false, 'the directory itself was never synced either');

      mkdirSync(join(layer.path, 'dir'));
      write(join(layer.path, 'dir', 'named'), 'data not synced');
      syncDir(join(layer.path, 'dir'));
      await layer.powerCut();
      assert.equal(read(join(layer.path, 'dir', 'named')), '', 'the name survived, the data did not');
    }));

  it('fsync of a new file makes its name durable too (like ext4 and xfs), and every name operation before it', (t) =>
    withLayer(t, async (layer) => {
      write(join(layer.path, 'earlier'), 'not synced');
      write(join(layer.path, 'log'), 'synced', { sync: true });
      write(join(layer.path, 'later'), 'not synced');
      await layer.powerCut();
      assert.equal(read(join(layer.path, 'log')), 'synced');
      assert.equal(read(join(layer.path, 'earlier')), '', 'its creation came before: committed in order, its data not');
      assert.equal(existsSync(join(layer.path, 'later')), false);
    }));

  it('rename and unlink are durable once the directory (or the renamed file) is synced; before that a cut undoes them', (t) =>
    withLayer(t, async (layer) => {
      const [current, next, gone] = ['current', 'next', 'gone'].map((name) => join(layer.path, name)) as [string, string, string];
      write(current, 'old', { sync: true });
      write(gone, 'still here', { sync: true });
      syncDir(layer.path);

      // The atomic replace: write a temp file, fsync it, rename it over the target.
      write(next, 'new', { sync: true });
      renameSync(next, current);
      unlinkSync(gone);
      assert.equal(read(current), 'new');
      await layer.powerCut();
      assert.equal(read(current), 'old', 'the rename was never committed');
      assert.equal(read(next), 'new', 'the synced temp file is still there under its own name');
      assert.equal(read(gone), 'still here', 'the unlink was never committed');

      renameSync(next, current);
      unlinkSync(gone);
      syncDir(layer.path);
      await layer.powerCut();
      assert.deepEqual([read(current), existsSync(next), existsSync(gone)], ['new', false, false]);
    }));

  it('a truncate is undone by a cut; O_DSYNC writes are durable without fsync', (t) =>
    withLayer(t, async (layer) => {
      const file = join(layer.path, 'big');
      write(file, 'x'.repeat(10_000), { sync: true });
      syncDir(layer.path);
      truncateSync(file, 100);
      write(join(layer.path, 'dsync'), 'durable at once', { flags: constants.O_CREAT | constants.O_WRONLY | constants.O_DSYNC });
      await layer.powerCut();
      assert.equal(read(file), 'x'.repeat(10_000));
      assert.equal(read(join(layer.path, 'dsync')), 'durable at once');
    }));
});

describe('power-loss layer: LMDB', () => {
  async function commit(path: string, env: Record<string, string>): Promise<{ committed: number; visible: number }> {
    const child = spawnDevice({ script: lmdbFixture, execArgv: ['--import', 'tsx'], env: { HF_LMDB_PATH: path, HF_THEN: 'kill', ...env } });
    const exit = await child.exited;
    assert.equal(exit.signal, 'SIGKILL', child.stderr());
    const committed = child.events.filter((e) => typeof e.committed === 'number').length;
    const visible = child.events.find((e) => typeof e.visible === 'number')?.visible as number;
    return { committed, visible };
  }

  async function keysAfterCut(layer: PowerLossLayer, path: string): Promise<unknown[]> {
    await layer.powerCut();
    const reader = spawnDevice({ script: lmdbFixture, execArgv: ['--import', 'tsx'], env: { ...layer.afterBootEnv, HF_LMDB_PATH: path, HF_READ: '1' } });
    const { read } = await reader.waitForEvent((e) => Array.isArray(e.read), 30_000);
    await reader.exited;
    return read as unknown[];
  }

  it('a commit that resolved survives a cut in the same tick; noSync commits are gone, though the process read them', (t) =>
    withLayer(t, async (layer) => {
      const path = join(layer.path, 'data.mdb');
      assert.deepEqual(await commit(path, { HF_COMMITS: '20' }), { committed: 20, visible: 20 });
      const synced = await keysAfterCut(layer, path);
      assert.equal(synced.length, 20);

      assert.deepEqual(await commit(path, { HF_COMMITS: '20', HF_FIRST: '1000', HF_NO_SYNC: '1' }), { committed: 20, visible: 40 });
      assert.deepEqual(await keysAfterCut(layer, path), synced, 'only the synced commits survived');
    }));
});
