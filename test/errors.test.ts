/** Errors keep their class and code across the worker boundary (structured clone drops both). */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { open, ErrorCodes, HoldfastError } from 'holdfast';
import { tempDir } from './helpers.js';

it('a worker-side failure reaches the app as a HoldfastError with its code', async () => {
  const dir = tempDir('errors');
  try {
    const notADirectory = join(dir.path, 'file');
    writeFileSync(notADirectory, 'not a directory');
    await assert.rejects(open({ broker: 'mqtt://127.0.0.1:1', clientId: 'c', cacheDir: join(notADirectory, 'cache') }), (err: unknown) => {
      assert.ok(err instanceof HoldfastError, 'class survives the thread boundary');
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'HoldfastError');
      assert.equal(err.code, ErrorCodes.CACHE_UNAVAILABLE);
      assert.match(err.message, /cannot create cache directory/);
      assert.match(err.stack ?? '', /worker stack/, 'the worker-side stack is kept for debugging');
      return true;
    });
  } finally {
    dir.remove();
  }
});

it('every error code is a stable, namespaced string', () => {
  for (const [name, code] of Object.entries(ErrorCodes)) {
    assert.equal(code, `HOLDFAST_${name}`);
  }
});
