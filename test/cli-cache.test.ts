/**
 * `holdfast cache inspect|export`: read-only, safe while a publisher holds the cache, and a clear
 * error (never a crash) for a missing or corrupt cache.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { open, type HoldfastClient } from 'holdfast';
import { freePort } from '@holdfast/testkit';
import { tempDir, waitUntil } from './helpers.js';
import { jsonLines, runCli, startCli, type RunningCli } from './fixtures/cli-run.js';

const dir = tempDir('cli-cache');
after(() => dir.remove());

async function inspectJson(cacheDir: string): Promise<Record<string, unknown>> {
  const r = await runCli(['cache', 'inspect', '--cache-dir', cacheDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('a cache held by a running publisher', () => {
  const cacheDir = join(dir.path, 'held');
  let publisher: RunningCli;

  before(async () => {
    // Nothing listens on this port, so every reading ends up in the cache.
    const deadBroker = `mqtt://127.0.0.1:${await freePort()}`;
    publisher = startCli(['publish', '--broker', deadBroker, '--client-id', 'cab-1', '--cache-dir', cacheDir, '--interval', '20ms', '--timeout', '100ms', '--priority', '4', '--topic', 'site/{device}/{kind}']);
    await publisher.waitForLine((l) => l.includes('"msg":"started"'), 20_000);
    await waitUntil(
      async () => {
        const r = await runCli(['cache', 'inspect', '--cache-dir', cacheDir, '--json']);
        return r.code === 0 && (JSON.parse(r.stdout) as { messages: number }).messages >= 20;
      },
      30_000,
      'the publisher to cache 20 readings',
    );
  });
  after(async () => {
    publisher.kill('SIGKILL');
    await publisher.done;
  });

  it('inspect shows count, bytes, oldest age and counts by priority while it writes', async () => {
    const r = await inspectJson(cacheDir);
    const byPriority = r.byPriority as Record<string, number>;
    assert.ok((r.messages as number) >= 20);
    assert.ok((r.bytes as number) > 0);
    assert.ok((r.oldestAgeMs as number) > 0);
    assert.equal(r.deadLetters, 0);
    assert.deepEqual(r.quarantined, []);
    assert.ok(byPriority['4']! > 0, 'telemetry at --priority 4');
    assert.equal(Object.values(byPriority).reduce((a, b) => a + b, 0), r.messages);
    const text = await runCli(['cache', 'inspect', '--cache-dir', cacheDir]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /messages\s+\d+/);
    assert.match(text.stdout, /by priority\s+.*p4: \d+/);
  });

  it('export --format jsonl writes every cached message, oldest first', async () => {
    const r = await runCli(['cache', 'export', '--cache-dir', cacheDir, '--format', 'jsonl']);
    assert.equal(r.code, 0, r.stderr);
    const rows = jsonLines(r.stdout);
    assert.ok(rows.length >= 20);
    const seqs = rows.map((row) => row.seq as number);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    const first = rows[0]!;
    assert.equal(first.topic, 'site/cab-1/telemetry');
    assert.equal(first.encoding, 'utf8');
    const body = JSON.parse(first.payload as string) as Record<string, unknown>;
    assert.equal(body.device, 'cab-1');
    assert.equal(body.kind, 'telemetry');
    assert.equal(body.n, 1);
  });

  it('SIGTERM: the publisher closes gracefully with exit code 0 and keeps everything in the cache', async () => {
    publisher.kill('SIGTERM');
    const result = await publisher.done;
    assert.equal(result.code, 0, result.stderr);
    const closed = jsonLines(result.stdout).find((l) => l.msg === 'closed');
    assert.ok(closed, 'a closed line');
    const r = await inspectJson(cacheDir);
    assert.equal(r.messages, closed.accepted, 'every accepted reading is in the cache');
    assert.equal(r.messages, closed.cached);
  });

  it('quarantined caches next to it are listed', async () => {
    const corpse = join(cacheDir, 'cache.mdb.corrupt-2026-01-01T00-00-00-000Z');
    writeFileSync(corpse, 'garbage');
    const r = await inspectJson(cacheDir);
    assert.deepEqual(r.quarantined, ['cache.mdb.corrupt-2026-01-01T00-00-00-000Z']);
  });
});

describe('an encrypted cache, and journal mode\'s intake log', () => {
  const cacheDir = join(dir.path, 'sealed');
  const keyFile = join(dir.path, 'cache.key');
  let client: HoldfastClient;

  before(async () => {
    const key = randomBytes(32);
    writeFileSync(keyFile, `${key.toString('hex')}\n`);
    // Offline and in journal mode: the readings go to the intake log and then the (sealed) cache.
    client = await open({ broker: `mqtt://127.0.0.1:${await freePort()}`, clientId: 'cab-sealed', cacheDir, cacheKey: key, durability: 'journal', timeoutMs: 100 });
    for (let n = 1; n <= 5; n++) client.publish('site/cab-sealed/t', JSON.stringify({ n, secret: 'SEALED-7c1' }));
    await client.flush();
  });
  after(() => client.close());

  it('needs its key: without it, or with another, a clear error', async () => {
    const r = await runCli(['cache', 'inspect', '--cache-dir', cacheDir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the cache is encrypted: give its key .*HOLDFAST_CACHE_KEY_MISMATCH/);
    const otherKey = join(dir.path, 'other.key');
    writeFileSync(otherKey, randomBytes(32).toString('base64'));
    const wrong = await runCli(['cache', 'export', '--cache-dir', cacheDir, '--cache-key-file', otherKey]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /encrypted with a different key/);
  });

  it('holdfast publish --cache-key-file writes a cache only that key opens', async () => {
    const published = join(dir.path, 'sealed-by-cli');
    const deadBroker = `mqtt://127.0.0.1:${await freePort()}`;
    const cli = startCli(['publish', '--broker', deadBroker, '--client-id', 'cab-cli-key', '--cache-dir', published, '--cache-key-file', keyFile, '--count', '3', '--interval', '10ms', '--timeout', '100ms']);
    try {
      let messages = 0;
      await waitUntil(
        async () => {
          const r = await runCli(['cache', 'inspect', '--cache-dir', published, '--cache-key-file', keyFile, '--json']);
          if (r.code === 0) messages = (JSON.parse(r.stdout) as { messages: number }).messages;
          return messages >= 3;
        },
        30_000,
        'the three readings in the sealed cache',
      );
      assert.equal(messages, 3);
      const noKey = await runCli(['cache', 'inspect', '--cache-dir', published]);
      assert.equal(noKey.code, 1, 'no key: refused');
      assert.match(noKey.stderr, /the cache is encrypted/);
    } finally {
      cli.kill('SIGTERM');
      await cli.done;
    }
  });

  it('inspect and export read it with --cache-key-file, and the intake log is listed', async () => {
    const report = JSON.parse((await runCli(['cache', 'inspect', '--cache-dir', cacheDir, '--cache-key-file', keyFile, '--json'])).stdout) as {
      messages: number;
      intakeLog: { segments: number };
    };
    assert.equal(report.messages, 5);
    assert.ok(report.intakeLog.segments >= 1, 'the running publisher\'s segment is listed');
    const r = await runCli(['cache', 'export', '--cache-dir', cacheDir, '--cache-key-file', keyFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      jsonLines(r.stdout).map((m) => (JSON.parse(m.payload as string) as { n: number }).n),
      [1, 2, 3, 4, 5],
    );
  });
});

describe('missing or corrupt caches give a clear error, exit code 1', () => {
  it('missing cache directory', async () => {
    for (const command of ['inspect', 'export']) {
      const r = await runCli(['cache', command, '--cache-dir', join(dir.path, 'nowhere')]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no holdfast cache at .*nowhere.*cache\.mdb/);
      assert.match(r.stderr, /HOLDFAST_CACHE_UNAVAILABLE/);
    }
  });

  const corruptions: Array<[string, (path: string) => void, RegExp]> = [
    ['random bytes', (p) => writeFileSync(p, Buffer.alloc(64 * 1024, 0x5a)), /corrupt: it is not an LMDB file/],
    ['an empty file', (p) => writeFileSync(p, ''), /corrupt: it is not an LMDB file/],
    ['a text file', (p) => writeFileSync(p, 'not a database\n'.repeat(1000)), /corrupt: it is not an LMDB file/],
  ];
  for (const [name, corrupt, message] of corruptions) {
    it(name, async () => {
      const cacheDir = join(dir.path, name.replace(/\W/g, '-'));
      mkdirSync(cacheDir);
      const file = join(cacheDir, 'cache.mdb');
      corrupt(file);
      const before = readFileSync(file);
      for (const command of ['inspect', 'export']) {
        const r = await runCli(['cache', command, '--cache-dir', cacheDir]);
        assert.equal(r.code, 1, `exit code (a crash would be a signal); stderr: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
      assert.deepEqual(readFileSync(file), before, 'read-only: the file is untouched');
    });
  }

  it('a truncated cache', async () => {
    const source = join(dir.path, 'held', 'cache.mdb');
    const cacheDir = join(dir.path, 'truncated');
    mkdirSync(cacheDir);
    copyFileSync(source, join(cacheDir, 'cache.mdb'));
    const size = statSync(source).size;
    writeFileSync(join(cacheDir, 'cache.mdb'), readFileSync(source).subarray(0, Math.floor(size / 2)));
    const r = await runCli(['cache', 'inspect', '--cache-dir', cacheDir]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /corrupt: it is truncated/);
  });
});
