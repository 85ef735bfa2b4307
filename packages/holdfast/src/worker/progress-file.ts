import { closeSync, constants, existsSync, fsyncSync, openSync, readSync, write, writeSync } from 'node:fs';
import { join } from 'node:path';
import { checksum } from '../intake-format.js';

/**
 * The one small durable write per exchange. When a PUBREC arrives, the broker holds the message and
 * the client must answer PUBREL; from that moment a resent PUBLISH would be a second message. So
 * before the PUBREL goes out, this file records that every reading up to the exchange's last seq is
 * done, and which packet id awaits its PUBCOMP. After a power cut the client resends that PUBREL (the
 * broker answers PUBCOMP, or 0x92 when it had completed it) and never sends those readings again,
 * however many of them the batched removals had not yet taken out of the cache.
 *
 * Two 512-byte slots, written alternately with one pwrite on a descriptor opened O_DSYNC: the write
 * returns once the data is on the disk (one flush, one page, one trip to libuv's pool). A write torn
 * by the power spoils only its own slot, and it never returned, so no PUBREL went out on it: the
 * other slot, one exchange older, is then the truth.
 */
export interface Progress {
  /** Every reading with a seq at or below this is delivered (or dead-lettered, or evicted). 0: none. */
  floor: number;
  /** The exchange whose PUBREL may still await its PUBCOMP. */
  pubrel: { messageId: number; firstSeq: number; lastSeq: number } | undefined;
}

export const PROGRESS_FILE = 'progress';
const SLOT_BYTES = 512;
const FILE_BYTES = 4096;
const MAGIC = 0x47504648; // 'HFPG'
const VERSION = 1;
// magic u32 · version u32 · counter f64 · floor f64 · messageId u32 · pad u32 · firstSeq f64 · lastSeq f64 · checksum u32
const BODY_BYTES = 4 + 4 + 8 + 8 + 4 + 4 + 8 + 8;

interface Pending {
  progress: Progress;
  waiters: Array<(err?: Error) => void>;
}

export class ProgressFile {
  readonly #fd: number;
  #counter: number;
  #current: Progress;
  #writing = false;
  #closed = false;
  #next: Pending | undefined;
  readonly #slot = Buffer.alloc(SLOT_BYTES);

  private constructor(fd: number, counter: number, current: Progress) {
    this.#fd = fd;
    this.#counter = counter;
    this.#current = current;
  }

  /** Opens (or creates, durably) the file in `dir` and reads the newest whole slot. */
  static open(dir: string): ProgressFile {
    const path = join(dir, PROGRESS_FILE);
    const created = !existsSync(path);
    if (created) {
      const init = openSync(path, 'w', 0o600);
      writeSync(init, Buffer.alloc(FILE_BYTES), 0, FILE_BYTES, 0);
      fsyncSync(init);
      closeSync(init);
      syncDirectory(dir);
    }
    const fd = openSync(path, constants.O_RDWR | constants.O_DSYNC, 0o600);
    if (created) return new ProgressFile(fd, 0, NONE);
    const newest = newestSlot(fd);
    return new ProgressFile(fd, newest?.counter ?? 0, newest?.progress ?? NONE);
  }

  /** The last progress written (or read at open). */
  get current(): Progress {
    return this.#current;
  }

  /**
   * Records `progress` durably; resolves once fdatasync returned. Writes go one at a time; a request
   * made while one is on its way replaces any other waiting request (only the newest matters), and
   * resolves when the newest is durable.
   */
  write(progress: Progress): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the progress file is closed'));
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => (err ? reject(err) : resolve());
      if (this.#next) {
        this.#next.progress = progress;
        this.#next.waiters.push(done);
      } else {
        this.#next = { progress, waiters: [done] };
      }
      this.#drain();
    });
  }

  /** Closes the file once the write on its way (if any) is done; later writes are refused. */
  close(): void {
    this.#closed = true;
    if (!this.#writing) closeSync(this.#fd);
  }

  #drain(): void {
    if (this.#writing || !this.#next) return;
    const { progress, waiters } = this.#next;
    this.#next = undefined;
    if (this.#closed) {
      for (const waiter of waiters) waiter(new Error('the progress file is closed'));
      return;
    }
    this.#writing = true;
    const counter = this.#counter + 1;
    encodeSlot(this.#slot, counter, progress);
    const finish = (err: Error | null): void => {
      this.#writing = false;
      if (this.#closed) closeSync(this.#fd);
      if (!err) {
        this.#counter = counter;
        this.#current = progress;
      }
      for (const waiter of waiters) waiter(err ?? undefined);
      this.#drain();
    };
    write(this.#fd, this.#slot, 0, SLOT_BYTES, (counter % 2) * SLOT_BYTES, (err) => finish(err));
  }
}

const NONE: Progress = { floor: 0, pubrel: undefined };

/** The progress in `dir`, read without creating or changing anything (for `holdfast cache inspect`). */
export function readProgress(dir: string): Progress {
  const path = join(dir, PROGRESS_FILE);
  if (!existsSync(path)) return NONE;
  const fd = openSync(path, 'r');
  try {
    return newestSlot(fd)?.progress ?? NONE;
  } finally {
    closeSync(fd);
  }
}

/** Whether the progress says a reading is done: the cache may still hold it until its batched removal. */
export function isDone(progress: Progress, seq: number): boolean {
  const { floor, pubrel } = progress;
  return seq <= floor || (pubrel !== undefined && seq >= pubrel.firstSeq && seq <= pubrel.lastSeq);
}

function newestSlot(fd: number): { counter: number; progress: Progress } | undefined {
  const bytes = Buffer.alloc(FILE_BYTES);
  readSync(fd, bytes, 0, FILE_BYTES, 0);
  const slots = [decodeSlot(bytes.subarray(0, SLOT_BYTES)), decodeSlot(bytes.subarray(SLOT_BYTES, 2 * SLOT_BYTES))];
  return slots.filter((s) => s !== undefined).sort((a, b) => b.counter - a.counter)[0];
}

function encodeSlot(slot: Buffer, counter: number, p: Progress): void {
  slot.fill(0);
  let o = slot.writeUInt32LE(MAGIC, 0);
  o = slot.writeUInt32LE(VERSION, o);
  o = slot.writeDoubleLE(counter, o);
  o = slot.writeDoubleLE(p.floor, o);
  o = slot.writeUInt32LE(p.pubrel?.messageId ?? 0, o);
  o = slot.writeUInt32LE(0, o);
  o = slot.writeDoubleLE(p.pubrel?.firstSeq ?? 0, o);
  o = slot.writeDoubleLE(p.pubrel?.lastSeq ?? 0, o);
  slot.writeUInt32LE(checksum(slot, 0, BODY_BYTES), o);
}

function decodeSlot(slot: Buffer): { counter: number; progress: Progress } | undefined {
  if (slot.readUInt32LE(0) !== MAGIC || slot.readUInt32LE(4) !== VERSION) return undefined;
  if (slot.readUInt32LE(BODY_BYTES) !== checksum(slot, 0, BODY_BYTES)) return undefined;
  const messageId = slot.readUInt32LE(24);
  const progress: Progress = {
    floor: slot.readDoubleLE(16),
    pubrel: messageId === 0 ? undefined : { messageId, firstSeq: slot.readDoubleLE(32), lastSeq: slot.readDoubleLE(40) },
  };
  return { counter: slot.readDoubleLE(8), progress };
}

/** A new file's name is durable only once its directory is synced. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
