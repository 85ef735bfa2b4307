/**
 * The testkit's slow-flash shim: every durable write of a device process is delayed by the injected
 * latency and counted, from any thread, and the counts survive a SIGKILL. Without a C compiler these
 * tests skip, except with CI=true, where they fail and name what is missing.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { slowFsyncShim, spawnDevice } from '@holdfast/testkit';
import { tempDir } from './helpers.js';

const lmdbCommits = fileURLToPath(new URL('./fixtures/lmdb-commits.ts', import.meta.url));
const DELAY_MS = 20;

// Plain Node, no imports: nothing else in the child syncs, so the counts are exact.
const SYNCS = `
import { constants, fdatasync, fdatasyncSync, fsyncSync, openSync, writeSync } from 'node:fs';
const [file, dsyncFile] = process.argv.slice(2);
const n = Number(process.env.HF_N);
const fd = openSync(file, 'w');
const started = performance.now();
for (let i = 0; i < n; i++) {
  writeSync(fd, 'x');
  fdatasyncSync(fd);
}
fsyncSync(fd);
const syncMs = performance.now() - started;
// On libuv's thread pool, all at once: other threads, counted into the same file.
await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())))));
const dsync = openSync(dsyncFile, constants.O_WRONLY | constants.O_CREAT | constants.O_DSYNC);
writeSync(dsync, 'meta');
writeSync(dsync, 'meta', 0);
console.log(JSON.stringify({ syncMs }));
setInterval(() => {}, 1000);
`;

/** Skips (or, with CI=true, fails) when the shim cannot be built here. */
function requireShim(t: TestContext): boolean {
  const shim = slowFsyncShim();
  if (shim.ok) return true;
  if (process.env.CI === 'true') assert.fail(`CI=true and the slow-fsync shim cannot be built: ${shim.reason}`);
  t.skip(`slow-fsync shim unavailable: ${shim.reason}`);
  return false;
}

describe('slow-fsync shim', () => {
  let dir: ReturnType<typeof tempDir>;
  let script: string;
  before(() => {
    dir = tempDir('slow-fsync');
    script = join(dir.path, 'syncs.mjs');
    writeFileSync(script, SYNCS);
  });
  after(() => dir.remove());

  it('delays and counts every sync, from any thread, and the counts survive SIGKILL', async (t) => {
    if (!requireShim(t)) return;
    const n = 10;
    const device = spawnDevice({ script, args: [join(dir.path, 'data'), join(dir.path, 'meta')], env: { HF_N: String(n) }, slowFsyncMs: DELAY_MS });
    const done = await device.waitForEvent((e) => typeof e.syncMs === 'number', 30_000);
    assert.ok((done.syncMs as number) >= (n + 1) * DELAY_MS, `${n} fdatasync + 1 fsync at ${DELAY_MS} ms took ${String(done.syncMs)} ms`);
    await device.kill('SIGKILL');
    const counts = device.syncCounts();
    assert.deepEqual(
      { fsync: counts.fsync, fdatasync: counts.fdatasync, dsyncWrites: counts.dsyncWrites, msync: counts.msync, syncFileRange: counts.syncFileRange, syncfs: counts.syncfs, total: counts.total },
      { fsync: 1, fdatasync: 2 * n, dsyncWrites: 2, msync: 0, syncFileRange: 0, syncfs: 0, total: 2 * n + 3 },
    );
    assert.ok(Math.abs(counts.delayedMs - counts.total * DELAY_MS) < 1, `delayed ${counts.delayedMs} ms for ${counts.total} syncs`);
    assert.ok(counts.syncMs > 0 && counts.syncMs < counts.delayedMs, `the real calls took ${counts.syncMs} ms, apart from the injected delay`);
  });

  it('counts 0 ms too: the shim loaded, nothing delayed', async (t) => {
    if (!requireShim(t)) return;
    const device = spawnDevice({ script, args: [join(dir.path, 'data0'), join(dir.path, 'meta0')], env: { HF_N: '3' }, slowFsyncMs: 0 });
    await device.waitForEvent((e) => typeof e.syncMs === 'number', 30_000);
    await device.kill('SIGKILL');
    const counts = device.syncCounts();
    assert.equal(counts.total, 2 * 3 + 3);
    assert.equal(counts.delayedMs, 0);
  });

  it('sees every durable write of LMDB as holdfast opens it: fdatasync and the O_DSYNC meta page, on lmdb-js threads too', async (t) => {
    if (!requireShim(t)) return;
    const commits = 8;
    const device = spawnDevice({
      script: lmdbCommits,
      execArgv: ['--import', 'tsx'],
      env: { HF_LMDB_PATH: join(dir.path, 'cache.mdb'), HF_COMMITS: String(commits), TSX_DISABLE_CACHE: '1' },
      slowFsyncMs: DELAY_MS,
    });
    const done = await device.waitForEvent((e) => typeof e.commits === 'number', 30_000);
    await device.waitForEvent((e) => e.closed === true, 30_000);
    const counts = device.syncCounts();
    // Each synced LMDB commit is two flushes: fdatasync of the data pages, then the meta page through an O_DSYNC descriptor.
    assert.ok(counts.fdatasync >= commits && counts.dsyncWrites >= commits, `after ${commits} commits: ${JSON.stringify(counts)}`);
    assert.ok((done.ms as number) >= 2 * commits * DELAY_MS, `${commits} commits at ${DELAY_MS} ms per flush took ${String(done.ms)} ms`);
  });

  it('is not loaded without slowFsyncMs', async () => {
    const device = spawnDevice({ script, args: [join(dir.path, 'data1'), join(dir.path, 'meta1')], env: { HF_N: '1' } });
    try {
      await device.waitForEvent((e) => typeof e.syncMs === 'number', 30_000);
      assert.throws(() => device.syncCounts(), /without slowFsyncMs/);
    } finally {
      await device.kill();
    }
  });
});
