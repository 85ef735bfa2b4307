/**
 * The progress file (worker/progress-file.ts) is the one durable write per exchange: two slots written
 * alternately, each with its own checksum, so a write torn by a power cut spoils only itself and the
 * other slot, one exchange older, is read instead. Real files in a temp dir.
 */
import assert from 'node:assert/strict';
import { openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
// The progress file is the worker's internals, not public API: the built module is imported by path.
import { PROGRESS_FILE, ProgressFile } from '../packages/holdfast/dist/worker/progress-file.js';
import { tempDir } from './helpers.js';

describe('progress file', () => {
  it('reads back the newest progress written, across reopening', async () => {
    const dir = tempDir('progress');
    try {
      const file = ProgressFile.open(dir.path);
      assert.deepEqual(file.current, { floor: 0, pubrel: undefined });
      await file.write({ floor: 41, pubrel: { messageId: 42, firstSeq: 41, lastSeq: 41 } });
      await file.write({ floor: 2 ** 33 + 7, pubrel: { messageId: 65_000, firstSeq: 2 ** 33 + 1, lastSeq: 2 ** 33 + 7 } });
      file.close();
      const again = ProgressFile.open(dir.path);
      assert.deepEqual(again.current, { floor: 2 ** 33 + 7, pubrel: { messageId: 65_000, firstSeq: 2 ** 33 + 1, lastSeq: 2 ** 33 + 7 } });
      again.close();
    } finally {
      dir.remove();
    }
  });

  it('a torn slot is ignored: the other, one write older, is the truth', async () => {
    const dir = tempDir('progress-torn');
    try {
      const file = ProgressFile.open(dir.path);
      await file.write({ floor: 10, pubrel: { messageId: 11, firstSeq: 10, lastSeq: 10 } });
      await file.write({ floor: 11, pubrel: { messageId: 12, firstSeq: 11, lastSeq: 11 } });
      file.close();
      // The second write went to slot 0 (counter 2): tear it as a power cut mid-write would.
      const bytes = readFileSync(join(dir.path, PROGRESS_FILE));
      const fd = openSync(join(dir.path, PROGRESS_FILE), 'r+');
      writeSync(fd, Buffer.alloc(20, 0xff), 0, 20, 20);
      closeSync(fd);
      assert.notDeepEqual(readFileSync(join(dir.path, PROGRESS_FILE)), bytes);
      const again = ProgressFile.open(dir.path);
      assert.deepEqual(again.current, { floor: 10, pubrel: { messageId: 11, firstSeq: 10, lastSeq: 10 } });
      // The next write goes to the torn slot's turn and is read back whole.
      await again.write({ floor: 12, pubrel: undefined });
      again.close();
      assert.deepEqual(ProgressFile.open(dir.path).current, { floor: 12, pubrel: undefined });
    } finally {
      dir.remove();
    }
  });

  it('writes made while one is on its way collapse into the newest, and every caller hears when it is durable', async () => {
    const dir = tempDir('progress-coalesce');
    try {
      const file = ProgressFile.open(dir.path);
      const writes = [1, 2, 3, 4, 5].map((floor) => file.write({ floor, pubrel: undefined }));
      await Promise.all(writes);
      assert.equal(file.current.floor, 5);
      file.close();
      assert.equal(ProgressFile.open(dir.path).current.floor, 5);
    } finally {
      dir.remove();
    }
  });
});
