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
      assert.equal(err.code, 'HOLDFAST_CACHE_UNAVAILABLE');
      assert.match(err.message, /cannot create cache directory/);
      assert.match(err.stack ?? '', /worker stack/, 'the worker-side stack is kept for debugging');
      return true;
    });
  } finally {
    dir.remove();
  }
});

it('the error codes are exactly these stable strings (codes are API: none renamed, none dropped)', () => {
  // Listed literally, not derived from ErrorCodes: a renamed, dropped or added code must fail here.
  assert.deepEqual(
    { ...ErrorCodes },
    {
      INVALID_OPTION: 'HOLDFAST_INVALID_OPTION',
      INVALID_TOPIC: 'HOLDFAST_INVALID_TOPIC',
      INVALID_PAYLOAD: 'HOLDFAST_INVALID_PAYLOAD',
      INVALID_QOS: 'HOLDFAST_INVALID_QOS',
      INVALID_PRIORITY: 'HOLDFAST_INVALID_PRIORITY',
      INVALID_ARGUMENT: 'HOLDFAST_INVALID_ARGUMENT',
      CLOSED: 'HOLDFAST_CLOSED',
      CACHE_UNAVAILABLE: 'HOLDFAST_CACHE_UNAVAILABLE',
      CACHE_QUARANTINED: 'HOLDFAST_CACHE_QUARANTINED',
      CACHE_KEY_MISMATCH: 'HOLDFAST_CACHE_KEY_MISMATCH',
      CACHE_FORMAT_UNSUPPORTED: 'HOLDFAST_CACHE_FORMAT_UNSUPPORTED',
      CACHE_WRITE_FAILED: 'HOLDFAST_CACHE_WRITE_FAILED',
      HANDLER_FAILED: 'HOLDFAST_HANDLER_FAILED',
      WORKER_CRASHED: 'HOLDFAST_WORKER_CRASHED',
      WORKER_FAILED: 'HOLDFAST_WORKER_FAILED',
      CACHE_LOCKED: 'HOLDFAST_CACHE_LOCKED',
      TIMEOUT: 'HOLDFAST_TIMEOUT',
      INVALID_BULK: 'HOLDFAST_INVALID_BULK',
      SEQ_EXHAUSTED: 'HOLDFAST_SEQ_EXHAUSTED',
      INTERNAL: 'HOLDFAST_INTERNAL',
    },
  );
});
