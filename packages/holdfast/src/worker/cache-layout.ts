/**
 * The LMDB layout of the records, shared by the worker's cache, the corruption probe and the CLI's
 * reader. Records live in one table keyed by priority, then seq:
 *
 *   key = priority (1 byte, 1..10) · seq (7 bytes, big-endian; seqs are below 2^53)
 *
 * Key order is therefore the eviction order (lowest priority first, oldest first within it), and one
 * write stores a record with no separate index. Publish order is each priority's range in key order,
 * merged by seq: a k-way merge over at most ten ranges.
 */
import type { Database, RangeOptions } from 'lmdb';

export const CACHE_FILE = 'cache.mdb';
export const RECORDS_DB = 'records';
export const MIN_PRIORITY = 1;
export const MAX_PRIORITY = 10;
export const KEY_BYTES = 8;

export type RecordsDb = Database<Buffer, Buffer>;

const HIGH = 2 ** 32;

/** Writes a record's key into `into` (a reused buffer on hot paths: LMDB copies keys on each call). */
export function recordKey(priority: number, seq: number, into: Buffer = Buffer.allocUnsafe(KEY_BYTES)): Buffer {
  // Plain byte stores: Buffer's write methods validate their arguments, and this runs per record.
  const high = Math.floor(seq / HIGH);
  const low = seq >>> 0;
  into[0] = priority;
  into[1] = high >>> 16;
  into[2] = high >>> 8;
  into[3] = high;
  into[4] = low >>> 24;
  into[5] = low >>> 16;
  into[6] = low >>> 8;
  into[7] = low;
  return into;
}

export function keyPriority(key: Uint8Array): number {
  return key[0]!;
}

export function keySeq(key: Uint8Array): number {
  return ((key[1]! << 16) | (key[2]! << 8) | key[3]!) * HIGH + (((key[4]! << 24) | (key[5]! << 16) | (key[6]! << 8) | key[7]!) >>> 0);
}

export function isRecordKey(key: unknown): key is Buffer {
  return key instanceof Uint8Array && key.length === KEY_BYTES && key[0]! >= MIN_PRIORITY && key[0]! <= MAX_PRIORITY;
}

export interface RecordEntry {
  key: Buffer;
  value: Buffer;
}

/**
 * Every record in publish (seq) order, from the first seq after `afterSeq`: each priority's range is
 * already in seq order, so the next record is the smallest head among them. Reads lazily; breaking out
 * of the loop closes the cursors.
 */
export function* recordsBySeq(db: RecordsDb, options: Pick<RangeOptions, 'snapshot'> & { afterSeq?: number } = {}): Generator<RecordEntry> {
  const iterators: Array<Iterator<RecordEntry>> = [];
  const heads: Array<RecordEntry | undefined> = [];
  const { afterSeq = 0, ...rangeOptions } = options;
  try {
    for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) {
      const range = db.getRange({ ...rangeOptions, start: recordKey(p, afterSeq + 1), end: recordKey(p + 1, 0) }) as Iterable<RecordEntry>;
      const it = range[Symbol.iterator]();
      const first = it.next();
      if (first.done) continue;
      iterators.push(it);
      heads.push(first.value);
    }
    for (;;) {
      let min = -1;
      let minSeq = Infinity;
      for (let i = 0; i < heads.length; i++) {
        const head = heads[i];
        if (head === undefined) continue;
        const seq = keySeq(head.key);
        if (seq < minSeq) {
          minSeq = seq;
          min = i;
        }
      }
      if (min < 0) return;
      const entry = heads[min]!;
      const next = iterators[min]!.next();
      heads[min] = next.done ? undefined : next.value;
      yield entry;
    }
  } finally {
    for (const it of iterators) it.return?.();
  }
}
