import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { checksum, FRAME_HEADER_BYTES, SEQ_BYTES, segmentName, segmentPrefix } from './intake-format.js';
import type { RetiredSegment } from './protocol.js';
import type { CacheCipher } from './worker/cipher.js';
import { encodeRecord, recordSize, type Rec } from './worker/record.js';

/** A segment this big is closed and a new one started, so the worker can delete what it committed. */
const SEGMENT_BYTES = 4 * 1024 * 1024;
/** After a failed write (disk full), how long to wait before trying a new segment. */
const RETRY_MS = 1000;


/**
 * Journal mode's write-ahead intake log, on the app thread: publish() appends the reading with one
 * write(2) before it returns. That puts it in the kernel's page cache, which a crash or SIGKILL of the
 * process cannot take away (only an OS crash or power loss can, and then only what the worker has not
 * yet committed to LMDB with fsync). The cost is a system call per publish(), so spill mode has no log.
 */
export class IntakeLog {
  readonly #dir: string;
  readonly #epoch: number;
  readonly #cipher: CacheCipher | undefined;
  readonly #onFailure: (err: Error) => void;
  #fd: number | undefined;
  #name = '';
  /** The open segment's salt (in its name): see intake-format.ts. */
  #salt = 0;
  #index = 0;
  #bytes = 0;
  #lastSeq = 0;
  /** performance.now() of the last failed write. */
  #failedAt = -Infinity;
  #lastFailure = '';
  #retired: RetiredSegment[] = [];
  /** Segments started since the last takeOpened(), for the worker to sync. */
  #opened: string[] = [];
  #frame = Buffer.allocUnsafe(64 * 1024);
  /** Reused for every append, so publish() allocates nothing for the log. */
  readonly #rec: Rec = { seq: 0, topic: '', payload: '', priority: 0, flags: 0, ts: 0, size: 0 };

  constructor(dir: string, epoch: number, cipher: CacheCipher | undefined, onFailure: (err: Error) => void) {
    this.#dir = dir;
    this.#epoch = epoch;
    this.#cipher = cipher;
    this.#onFailure = onFailure;
  }

  /**
   * Appends one reading; false when it could not be written (disk full, or within a second of such a
   * failure, when a new segment is tried). publish() then refuses the reading: journal mode accepts
   * only what a crash cannot take. The failure is also reported once a minute.
   */
  append(seq: number, topic: string, payload: string | Uint8Array, priority: number, flags: number, ts: number): boolean {
    if (this.#fd === undefined && !this.#startSegment()) return false;
    const rec = this.#rec;
    rec.seq = seq;
    rec.topic = topic;
    rec.payload = payload;
    rec.priority = priority;
    rec.flags = flags;
    rec.ts = ts;
    rec.size = recordSize(topic, payload);
    const record = encodeRecord(rec, this.#cipher);
    const bodyBytes = SEQ_BYTES + record.byteLength;
    const size = FRAME_HEADER_BYTES + bodyBytes;
    if (this.#frame.length < size) this.#frame = Buffer.allocUnsafe(Math.max(size, this.#frame.length * 2));
    const frame = this.#frame;
    frame.writeDoubleLE(seq, FRAME_HEADER_BYTES);
    frame.set(record, FRAME_HEADER_BYTES + SEQ_BYTES);
    frame.writeUInt32LE(bodyBytes, 0);
    frame.writeUInt32LE(checksum(frame, FRAME_HEADER_BYTES, size, this.#salt), 4);
    try {
      const written = writeSync(this.#fd!, frame, 0, size);
      if (written !== size) throw new Error(`short write (${written} of ${size} bytes)`);
    } catch (err) {
      this.#fail(err as Error);
      return false;
    }
    this.#lastSeq = seq;
    this.#bytes += size;
    if (this.#bytes >= SEGMENT_BYTES) this.#endSegment();
    return true;
  }

  /** Why the last write failed (e.g. ENOSPC), for the error publish() throws. */
  get lastFailure(): string {
    return this.#lastFailure;
  }

  /** Segments started since the last call, for the worker to sync (it opens them by name). */
  takeOpened(): string[] | undefined {
    if (this.#opened.length === 0) return undefined;
    const opened = this.#opened;
    this.#opened = [];
    return opened;
  }

  /** Segments closed since the last call, for the worker to delete once committed. */
  takeRetired(): RetiredSegment[] | undefined {
    if (this.#retired.length === 0) return undefined;
    const retired = this.#retired;
    this.#retired = [];
    return retired;
  }

  /** Closes the open segment (at close()); it is retired like any other. */
  close(): void {
    this.#endSegment();
  }

  /**
   * Closes the open segment and returns the name the next one will have. A worker that replaces a
   * dead one reads only the segments before it: the ones this log keeps writing are not its to
   * replay, nor to delete.
   */
  rotate(): string {
    this.#endSegment();
    return segmentPrefix(this.#epoch, this.#index);
  }

  #startSegment(): boolean {
    // Monotonic: a wall clock set back during the wait would otherwise stop the log retrying for good.
    if (performance.now() - this.#failedAt < RETRY_MS) return false;
    const salt = randomBytes(4).readUInt32LE(0);
    const name = segmentName(this.#epoch, this.#index++, salt);
    try {
      this.#fd = openSync(join(this.#dir, name), 'wx', 0o600);
    } catch (err) {
      this.#fail(err as Error);
      return false;
    }
    this.#name = name;
    this.#salt = salt;
    this.#bytes = 0;
    this.#opened.push(name);
    return true;
  }

  #endSegment(): void {
    if (this.#fd === undefined) return;
    try {
      closeSync(this.#fd);
    } catch {
      // Closing cannot lose what write(2) already handed to the kernel.
    }
    this.#fd = undefined;
    this.#retired.push({ name: this.#name, lastSeq: this.#lastSeq });
  }

  #fail(err: Error): void {
    // Never write after a failure: a damaged frame can then only be a segment's last one.
    this.#endSegment();
    this.#lastFailure = (err as NodeJS.ErrnoException).code ?? err.message;
    const now = performance.now();
    const first = this.#failedAt === -Infinity || now - this.#failedAt >= 60_000;
    this.#failedAt = now;
    if (first) this.#onFailure(err);
  }
}
