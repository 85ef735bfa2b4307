import { close, closeSync, fdatasync, fsync, open, openSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Journal mode's intake log is written by the app thread with write(2), which a crash of the process
 * cannot undo but a power cut can. This makes it durable in batches: every SYNC_EVERY_MS while readings
 * come, and at once when a flush() waits. One fdatasync per segment in a batch, on the worker's
 * descriptors, off its event loop (libuv's pool).
 */
const SYNC_EVERY_MS = 200;

interface Segment {
  name: string;
  fd: number | undefined;
  /** Retired by the facade: closed after the next sync (nothing more is written to it). */
  retired: boolean;
}

export class IntakeSync {
  readonly #dir: string;
  readonly #onSynced: () => void;
  readonly #onError: (err: Error) => void;
  readonly #segments: Segment[] = [];
  /** A segment was created since the last sync: its name is durable only once the directory is synced. */
  #dirDirty = false;
  /** The highest seq the worker received from the facade: the log holds at least this much. */
  #received = 0;
  #synced = 0;
  #syncing = false;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #failed = false;

  constructor(dir: string, onSynced: () => void, onError: (err: Error) => void) {
    this.#dir = dir;
    this.#onSynced = onSynced;
    this.#onError = onError;
  }

  /** Every seq at or below this is on the disk, not only in the page cache. */
  get syncedThrough(): number {
    return this.#synced;
  }

  /** The facade started a segment. */
  opened(name: string): void {
    let fd: number | undefined;
    try {
      fd = openSync(join(this.#dir, name), 'r');
    } catch (err) {
      this.#fail(err as Error);
    }
    this.#segments.push({ name, fd, retired: false });
    this.#dirDirty = true;
  }

  /** The facade closed these segments: synced once more, then their descriptors close. */
  retired(names: readonly string[]): void {
    for (const segment of this.#segments) if (names.includes(segment.name)) segment.retired = true;
  }

  /** A batch up to `lastSeq` arrived: publish() wrote it to the log before posting it. */
  received(lastSeq: number): void {
    if (lastSeq <= this.#received) return;
    this.#received = lastSeq;
    this.#timer ??= setTimeout(() => this.hurry(), SYNC_EVERY_MS).unref();
  }

  /** Syncs now (a flush() is waiting). */
  hurry(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    if (this.#received <= this.#synced && !this.#dirDirty) return;
    this.#sync();
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const segment of this.#segments) if (segment.fd !== undefined) closeSync(segment.fd);
    this.#segments.length = 0;
  }

  #sync(): void {
    this.#syncing = true;
    const through = this.#received;
    const segments = this.#segments.filter((s) => s.fd !== undefined);
    const syncDir = this.#dirDirty;
    this.#dirDirty = false;
    let left = segments.length + (syncDir ? 1 : 0);
    let failure: Error | undefined;
    const done = (err: Error | null): void => {
      if (err) failure = err;
      if (--left > 0) return;
      this.#syncing = false;
      if (failure) {
        this.#fail(failure);
      } else {
        this.#synced = Math.max(this.#synced, through);
        this.#closeRetired(segments);
        this.#onSynced();
      }
      if (this.#again || this.#received > this.#synced) {
        this.#again = false;
        this.#timer ??= setTimeout(() => this.hurry(), failure ? 1000 : 0).unref();
      }
    };
    if (left === 0) return done(null);
    for (const segment of segments) fdatasync(segment.fd!, done);
    if (syncDir) syncDirectory(this.#dir, done);
  }

  #closeRetired(synced: readonly Segment[]): void {
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const segment = this.#segments[i]!;
      if (!segment.retired || !synced.includes(segment)) continue;
      if (segment.fd !== undefined) closeSync(segment.fd);
      this.#segments.splice(i, 1);
    }
  }

  #fail(err: Error): void {
    // Readings stay safe the other ways (delivered, or committed to the cache); flush() waits for those.
    if (!this.#failed) this.#onError(err);
    this.#failed = true;
  }
}

function syncDirectory(dir: string, done: (err: Error | null) => void): void {
  open(dir, 'r', (err, fd) => {
    if (err) return done(err);
    fsync(fd, (syncErr) => close(fd, () => done(syncErr)));
  });
}
