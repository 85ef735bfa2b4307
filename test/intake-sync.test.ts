/**
 * Journal mode's intake log is synced in batches by the worker (worker/intake-sync.ts), and flush()
 * confirms a reading once `syncedThrough` covers it. A segment the worker cannot open (EMFILE on a busy
 * device, here a symlink loop: ELOOP, which root cannot bypass) is not synced, so it must not be
 * covered: syncedThrough stays put until the segment opens, and a segment swept meanwhile is let go.
 * Real files in a temp dir.
 */
import assert from 'node:assert/strict';
import { symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
// The intake sync is the worker's internals, not public API: the built module is imported by path.
import { IntakeSync } from '../packages/holdfast/dist/worker/intake-sync.js';
import { sleep, tempDir, waitUntil } from './helpers.js';

describe('intake log sync', () => {
  it('never counts as synced a segment it could not open, and syncs it once it opens', async () => {
    const dir = tempDir('intake-sync');
    const errors: Error[] = [];
    let syncs = 0;
    const sync = new IntakeSync(dir.path, () => syncs++, (err) => errors.push(err));
    try {
      writeFileSync(join(dir.path, 'good.log'), 'a');
      sync.opened('good.log');
      // A name that cannot be opened: a symlink to itself.
      symlinkSync('loop.log', join(dir.path, 'loop.log'));
      sync.opened('loop.log');
      sync.received(10);
      sync.hurry();
      await waitUntil(() => syncs > 0, 5000, 'a sync of the segment it could open');
      assert.equal(sync.syncedThrough, 0, 'a segment it could not open is not synced, so nothing is confirmed');
      assert.match(errors[0]?.message ?? '', /ELOOP/, 'the failure is reported');

      // The segment opens now: the next try syncs it and covers the readings.
      unlinkSync(join(dir.path, 'loop.log'));
      writeFileSync(join(dir.path, 'loop.log'), 'b');
      await waitUntil(() => sync.syncedThrough === 10, 5000, 'syncedThrough to cover the readings once every segment synced');
    } finally {
      sync.close();
      dir.remove();
    }
  });

  it('lets go of a segment deleted before it could open it (swept: its readings are safe elsewhere)', async () => {
    const dir = tempDir('intake-sync-gone');
    let syncs = 0;
    const sync = new IntakeSync(dir.path, () => syncs++, () => undefined);
    try {
      symlinkSync('gone.log', join(dir.path, 'gone.log'));
      sync.opened('gone.log');
      unlinkSync(join(dir.path, 'gone.log'));
      sync.received(5);
      sync.hurry();
      await waitUntil(() => sync.syncedThrough === 5, 5000, 'syncedThrough past a segment that no longer exists');
      await sleep(10);
      assert.ok(syncs > 0);
    } finally {
      sync.close();
      dir.remove();
    }
  });
});
