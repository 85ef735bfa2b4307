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
    const segment: Segment = { name, fd: undefined, retired: false };
    this.#open(segment);
    this.#segments.push(segment);
    this.#dirDirty = true;
  }

  /**
   * Opens a segment's descriptor (again, after a failure such as EMFILE); false while it cannot. A
   * segment deleted meanwhile (swept: all its readings are safe elsewhere) needs no sync: it is dropped.
   */
  #open(segment: Segment): boolean {
    if (segment.fd !== undefined) return true;
    try {
      segment.fd = openSync(join(this.#dir, segment.name), 'r');
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        const at = this.#segments.indexOf(segment);
        if (at >= 0) this.#segments.splice(at, 1);
        return true;
      }
      this.#fail(err as Error);
      return false;
    }
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
    // A segment it cannot open cannot be synced: syncedThrough stays put (flush() then waits for the
    // readings to be delivered or committed to the cache instead), and the open is tried again next time.
    let complete = true;
    for (const segment of [...this.#segments]) if (!this.#open(segment)) complete = false;
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
        if (complete) this.#synced = Math.max(this.#synced, through);
        this.#closeRetired(segments);
        this.#onSynced();
      }
      if (this.#again || this.#received > this.#synced) {
        this.#again = false;
        this.#timer ??= setTimeout(() => this.hurry(), failure || !complete ? 1000 : 0).unref();
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
