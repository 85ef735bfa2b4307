/**
 * Encryption at rest: with a cacheKey, cached topics and payloads are sealed (AES-256-GCM). The cache
 * files contain no plaintext of a known payload or topic, everything still drains, a wrong or missing
 * key is a clear error that quarantines nothing, and a key file works.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open, ErrorCodes, HoldfastError, type HoldfastOptions } from 'holdfast';
import { startAuditor, startBroker, type Auditor, type Broker } from '@holdfast/testkit';
import { extractReadingNumber, tempDir } from './helpers.js';

let broker: Broker;
let auditor: Auditor;
let protocolVersion: 4 | 5;
const SECRET = 'SECRET-READING-7f3a9c';
const TOPIC = 'sensors/dev-crypt/very-private-topic';

before(async () => {
  broker = await startBroker();
  protocolVersion = broker.protocolVersions.includes(5) ? 5 : 4;
  auditor = await startAuditor({ url: broker.url, topics: 'sensors/#', protocolVersion, extract: extractReadingNumber });
});
after(async () => {
  await auditor.close();
  await broker.close();
});

const opts = (cacheDir: string, extra: Partial<HoldfastOptions>, brokerUrl = broker.url): HoldfastOptions => ({
  broker: brokerUrl,
  clientId: 'dev-crypt',
  cacheDir,
  protocolVersion,
  ...extra,
});

/** Writes readings into an encrypted cache while the broker is unreachable. */
async function fillOffline(dir: string, key: Partial<HoldfastOptions>, count: number): Promise<void> {
  const client = await open(opts(dir, { ...key, timeoutMs: 200 }, 'mqtt://127.0.0.1:1'));
  for (let n = 1; n <= count; n++) client.publish(TOPIC, JSON.stringify({ device: 'dev-crypt', n, secret: SECRET }));
  await client.flush();
  assert.equal(client.stats().cached.messages, count);
  await client.close();
}

function cacheFilesContain(dir: string, needle: string): boolean {
  return readdirSync(dir).some((name) => readFileSync(join(dir, name)).includes(Buffer.from(needle)));
}

describe('encryption at rest', () => {
  it('cache files hold no plaintext of a known payload or topic, and everything still drains', async () => {
    const dir = tempDir('crypt');
    const cacheKey = randomBytes(32);
    try {
      await fillOffline(dir.path, { cacheKey }, 50);
      assert.equal(cacheFilesContain(dir.path, SECRET), false, 'no payload plaintext on disk');
      assert.equal(cacheFilesContain(dir.path, 'very-private-topic'), false, 'no topic plaintext on disk');

      const client = await open(opts(dir.path, { cacheKey: cacheKey.toString('hex') }));
      assert.equal(client.quarantined, undefined);
      await client.drained();
      await client.close();
      const report = await auditor.waitFor({ 'dev-crypt': Array.from({ length: 50 }, (_, i) => i + 1) }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    } finally {
      dir.remove();
    }
  });

  it('journal mode: the intake log publish() writes is sealed too', async () => {
    const dir = tempDir('crypt-journal');
    const cacheKey = randomBytes(32);
    try {
      const client = await open(opts(dir.path, { cacheKey, durability: 'journal', timeoutMs: 200 }, 'mqtt://127.0.0.1:1'));
      for (let n = 1; n <= 20; n++) client.publish(TOPIC, JSON.stringify({ device: 'dev-crypt-journal', n, secret: SECRET }));
      assert.ok(readdirSync(dir.path).some((f) => f.startsWith('intake-')), 'the intake log exists while the client runs');
      assert.equal(cacheFilesContain(dir.path, SECRET), false, 'no payload plaintext in the intake log');
      assert.equal(cacheFilesContain(dir.path, 'very-private-topic'), false, 'no topic plaintext in the intake log');
      await client.flush();
      await client.close();
    } finally {
      dir.remove();
    }
  });

  it('a wrong key, or none, is a clear error and quarantines nothing', async () => {
    const dir = tempDir('crypt-wrong');
    try {
      await fillOffline(dir.path, { cacheKey: randomBytes(32) }, 5);
      const before = readFileSync(join(dir.path, 'cache.mdb'));
      for (const extra of [{ cacheKey: randomBytes(32) }, {}]) {
        await assert.rejects(open(opts(dir.path, extra)), (err: unknown) => {
          assert.ok(err instanceof HoldfastError);
          assert.equal(err.code, ErrorCodes.CACHE_KEY_MISMATCH);
          assert.match(err.message, /cacheKey/);
          return true;
        });
      }
      assert.deepEqual(readdirSync(dir.path).filter((f) => f.includes('corrupt')), [], 'nothing quarantined');
      assert.ok(readFileSync(join(dir.path, 'cache.mdb')).equals(before), 'the cache is untouched');
    } finally {
      dir.remove();
    }
  });

  it('reads the key from a file (hex or base64) in the worker', async () => {
    const dir = tempDir('crypt-file');
    const key = randomBytes(32);
    try {
      const keyFile = join(dir.path, 'key');
      writeFileSync(keyFile, `${key.toString('base64')}\n`, { mode: 0o600 });
      await fillOffline(join(dir.path, 'cache'), { cacheKeyFile: keyFile }, 3);
      const client = await open(opts(join(dir.path, 'cache'), { cacheKey: key }));
      assert.equal(client.stats().cached.messages, 3);
      await client.close();
      await assert.rejects(open(opts(join(dir.path, 'cache'), { cacheKeyFile: join(dir.path, 'missing') })), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_OPTION && /cacheKeyFile cannot be read/.test(err.message));
    } finally {
      dir.remove();
    }
  });

  it('validates the key at the call site without echoing it', async () => {
    await assert.rejects(open(opts('/nonexistent-never-created', { cacheKey: 'too-short-secret' })), (err: unknown) => {
      assert.ok(err instanceof HoldfastError && err.code === ErrorCodes.INVALID_OPTION);
      assert.match(err.message, /cacheKey must be a 32-byte key/);
      assert.doesNotMatch(err.message, /too-short-secret/);
      return true;
    });
    await assert.rejects(open(opts('/nonexistent-never-created', { cacheKey: randomBytes(32), cacheKeyFile: '/k' })), /one or the other/);
  });
});
