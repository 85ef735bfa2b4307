/**
 * Guarantee 8: a corrupt cache is quarantined — renamed aside and kept for forensics, reported loudly
 * (the `quarantined` property, a 'quarantine' event and a warning on stderr) — never silently deleted,
 * and the client starts on a fresh cache that works.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { open, ErrorCodes, HoldfastError, type HoldfastOptions, type QuarantineInfo } from 'holdfast';
import { startAuditor, startBroker, type Auditor, type Broker } from '@holdfast/testkit';
import { extractReadingNumber, tempDir } from './helpers.js';

let broker: Broker;
let auditor: Auditor;
let protocol: 4 | 5;

before(async () => {
  broker = await startBroker();
  protocol = broker.protocolVersions.includes(5) ? 5 : 4;
  auditor = await startAuditor({ url: broker.url, topics: 'sensors/#', protocolVersion: protocol, extract: extractReadingNumber });
});
after(async () => {
  await auditor.close();
  await broker.close();
});

const options = (clientId: string, cacheDir: string, brokerUrl = broker.url): HoldfastOptions => ({ broker: brokerUrl, clientId, cacheDir, protocolVersion: protocol });

/**
 * Catches process warnings instead of letting Node print them: the quarantine warning is asserted
 * here, so it is not unlabelled noise in the test run.
 */
function catchWarnings(): { warnings: Array<Error & { code?: string }>; restore(): void } {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  const warnings: Array<Error & { code?: string }> = [];
  const onWarning = (warning: Error): number => warnings.push(warning);
  process.on('warning', onWarning);
  return {
    warnings,
    restore() {
      process.off('warning', onWarning);
      for (const printer of printers) process.on('warning', printer);
    },
  };
}

/** Opens on a damaged cache and checks the quarantine contract; returns the quarantined file. */
async function openDamaged(clientId: string, dir: string, damagedBytes: Buffer): Promise<void> {
  const quarantineEvents: QuarantineInfo[] = [];
  const caught = catchWarnings();
  const client = await open(options(clientId, dir)).finally(() => setImmediate(() => caught.restore()));
  client.on('quarantine', (q: QuarantineInfo) => quarantineEvents.push(q));
  try {
    assert.ok(client.quarantined, 'open() reports the quarantine');
    assert.match(client.quarantined.movedTo, /cache\.mdb\.corrupt-/);
    assert.deepEqual(readFileSync(client.quarantined.movedTo), damagedBytes, 'the damaged file is kept byte for byte');
    assert.ok(readdirSync(dir).some((f) => f.startsWith('cache.mdb.corrupt-')));
    await new Promise((r) => setImmediate(r));
    assert.equal(quarantineEvents.length, 1, "a 'quarantine' event is emitted");
    const warning = caught.warnings.find((w) => w.code === ErrorCodes.CACHE_QUARANTINED);
    assert.ok(warning, 'a warning on stderr, even with no listener');
    assert.equal(warning.name, 'HoldfastWarning');
    assert.match(warning.message, /^cache quarantined: moved to .*cache\.mdb\.corrupt-/);

    // The fresh cache works.
    client.publish(`sensors/${clientId}`, JSON.stringify({ device: clientId, n: 1 }));
    await client.drained();
    await auditor.waitFor({ [clientId]: [1] }, 10_000);
  } finally {
    await client.close();
  }
}

describe('corrupt cache', () => {
  it('a garbage-filled cache file is quarantined, not deleted', async () => {
    const dir = tempDir('garbage');
    try {
      const garbage = randomBytes(64 * 1024);
      writeFileSync(join(dir.path, 'cache.mdb'), garbage, { mode: 0o600 });
      await openDamaged('dev-garbage', dir.path, garbage);
    } finally {
      dir.remove();
    }
  });

  it('a truncated cache file (readings inside) is quarantined, not deleted', async () => {
    const dir = tempDir('truncated');
    try {
      // A real cache with readings in it: written while the broker is unreachable.
      const offline = await open(options('dev-trunc', dir.path, 'mqtt://127.0.0.1:1'));
      for (let n = 1; n <= 2000; n++) offline.publish('sensors/dev-trunc', JSON.stringify({ device: 'dev-trunc-old', n, pad: 'x'.repeat(200) }));
      await offline.flush();
      await offline.close();
      const file = join(dir.path, 'cache.mdb');
      truncateSync(file, Math.floor(statSync(file).size / 3));
      await openDamaged('dev-trunc', dir.path, readFileSync(file));
    } finally {
      dir.remove();
    }
  });

  it('after a quarantine, readings below the old progress floor are not taken as delivered (the epoch starts above it)', async () => {
    const dir = tempDir('epoch');
    const id = 'dev-epoch';
    try {
      // A first run delivers 50 readings: the progress file (outside the cache) records them as done.
      const first = await open({ ...options(id, dir.path), durability: 'journal' });
      for (let n = 1; n <= 50; n++) first.publish(`sensors/${id}`, JSON.stringify({ device: id, n }));
      await first.drained();
      await first.close();
      assert.equal((await auditor.waitFor({ [id]: Array.from({ length: 50 }, (_, i) => i + 1) }, 10_000)).devices[id]!.lost, 0);
      writeFileSync(join(dir.path, 'cache.mdb'), randomBytes(64 * 1024), { mode: 0o600 });

      // The next run starts on a fresh cache, offline: its readings wait in the cache.
      const caught = catchWarnings();
      const offline = await open({ ...options(id, dir.path, 'mqtt://127.0.0.1:1'), durability: 'journal' }).finally(() => setImmediate(() => caught.restore()));
      assert.ok(offline.quarantined, 'the garbage cache was quarantined');
      for (let n = 51; n <= 60; n++) offline.publish(`sensors/${id}`, JSON.stringify({ device: id, n }));
      await offline.flush();
      await offline.close();

      const online = await open({ ...options(id, dir.path), durability: 'journal' });
      try {
        assert.equal(online.stats().cached.messages, 10, 'the offline run\'s readings are in the cache');
        await online.drained();
      } finally {
        await online.close();
      }
      const report = await auditor.waitFor({ [id]: Array.from({ length: 60 }, (_, i) => i + 1) }, 10_000);
      const { lost, duplicates } = report.devices[id]!;
      assert.deepEqual({ lost, duplicates }, { lost: 0, duplicates: 0 }, `arrived: ${auditor.arrivals(id).join(',')}`);
    } finally {
      dir.remove();
    }
  });

  it('a healthy cache is never quarantined', async () => {
    const dir = tempDir('healthy');
    try {
      const first = await open(options('dev-healthy', dir.path, 'mqtt://127.0.0.1:1'));
      first.publish('sensors/dev-healthy', JSON.stringify({ device: 'dev-healthy', n: 1 }));
      await first.flush();
      await first.close();
      const second = await open(options('dev-healthy', dir.path));
      assert.equal(second.quarantined, undefined);
      assert.equal(second.stats().cached.messages, 1);
      await second.drained();
      await second.close();
      await auditor.waitFor({ 'dev-healthy': [1] }, 10_000);
    } finally {
      dir.remove();
    }
  });

  it('a healthy cache is not quarantined when the probe cannot run (it says nothing about the file)', async () => {
    const dir = tempDir('probe-cannot-run');
    const nodeOptions = process.env.NODE_OPTIONS;
    try {
      const first = await open(options('dev-probe-fails', dir.path, 'mqtt://127.0.0.1:1'));
      first.publish('sensors/dev-probe-fails', JSON.stringify({ device: 'dev-probe-fails', n: 1 }));
      await first.flush();
      await first.close();
      // The probe is a child node process: with an option node refuses, it exits at once (9), as a
      // probe that cannot start would (no memory to fork on a small Pi, an interpreter that cannot exec).
      process.env.NODE_OPTIONS = '--no-such-option-for-the-probe';
      const second = await open(options('dev-probe-fails', dir.path));
      process.env.NODE_OPTIONS = nodeOptions;
      try {
        assert.equal(second.quarantined, undefined, 'nothing quarantined');
        assert.equal(second.stats().cached.messages, 1, 'the backlog is still there');
        await second.drained();
      } finally {
        await second.close();
      }
      await auditor.waitFor({ 'dev-probe-fails': [1] }, 10_000);
    } finally {
      if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = nodeOptions;
      dir.remove();
    }
  });

  it('a cache in another holdfast format is refused, untouched and not quarantined', async () => {
    const dir = tempDir('format');
    try {
      const first = await open(options('dev-format', dir.path, 'mqtt://127.0.0.1:1'));
      first.publish('sensors/dev-format', JSON.stringify({ device: 'dev-format', n: 1 }));
      await first.flush();
      await first.close();
      // As a newer holdfast would leave it.
      const db = openLmdb({ path: join(dir.path, 'cache.mdb'), maxDbs: 8, noSubdir: true });
      await db.openDB({ name: 'meta', encoding: 'msgpack' }).put('format', 99);
      await db.close();
      const before = readFileSync(join(dir.path, 'cache.mdb'));

      await assert.rejects(open(options('dev-format', dir.path)), (err: unknown) => {
        assert.ok(err instanceof HoldfastError);
        assert.equal(err.code, ErrorCodes.CACHE_FORMAT_UNSUPPORTED);
        assert.match(err.message, /the cache is in format 99, and this holdfast reads format 3/);
        return true;
      });
      assert.deepEqual(readdirSync(dir.path).filter((f) => f.includes('corrupt')), [], 'nothing quarantined');
      assert.ok(readFileSync(join(dir.path, 'cache.mdb')).equals(before), 'the file is untouched');
    } finally {
      dir.remove();
    }
  });
});
