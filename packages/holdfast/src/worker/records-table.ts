import type { PutOptions } from 'lmdb';
import type { CacheCipher } from './cipher.js';
import { decodeRecord, encodeRecord, storedSize, type Rec } from './record.js';
import { KEY_BYTES, keyPriority, keySeq, MAX_PRIORITY, MIN_PRIORITY, recordKey, recordsBySeq, type RecordsDb } from './cache-layout.js';

/** Messages and their accounted bytes, in all and per priority (index 0..9 = priority 1..10). */
export interface Tally {
  messages: number;
  bytes: number;
  byPriority: number[];
}

/** What an eviction removed, per priority, and which seqs. */
export interface Eviction extends Tally {
  seqs: number[];
}

/** A cached record that cannot be decoded: its key and its stored bytes, as they are. */
export interface UnreadableRecord {
  seq: number;
  priority: number;
  stored: Uint8Array;
  reason: string;
}

/** What the drain reads: the oldest records, and any undecodable ones met on the way. */
export interface OldestRead {
  recs: Rec[];
  unreadable: UnreadableRecord[];
}

/** What the rest of the worker reads from the records; writes go through the Cache, which keeps the totals. */
export type CachedRecords = Pick<RecordsTable, 'readOldest' | 'readSeqs' | 'readSeqsOrUnreadable' | 'has' | 'evictionCandidates' | 'oldestTimestamp'>;

/**
 * Delivered records still in the cache, waiting for their batched removal: every seq at or below
 * `through` except those `keep` names (requeued dead letters). Before evicting anything pending, a
 * transaction over its limits takes these out first: they are done, and must not cost a reading.
 */
export interface DoneRecords {
  through: number;
  keep: (seq: number) => boolean;
}

const APPEND: PutOptions = { append: true };
const OVERWRITE: PutOptions = {};

/**
 * The `records` table (layout in cache-layout.ts: key order is the eviction order). Writes are *InTxn
 * calls that join the Cache's transaction and return a Tally of what they stored or removed: the Cache
 * keeps the totals and stores them in that same transaction.
 */
export class RecordsTable {
  readonly #db: RecordsDb;
  readonly #cipher: CacheCipher | undefined;
  /** Reused for keys on the write path (LMDB copies the key on every call). */
  readonly #key = Buffer.allocUnsafe(KEY_BYTES);

  constructor(db: RecordsDb, cipher: CacheCipher | undefined) {
    this.#db = db;
    this.#cipher = cipher;
  }

  /** How many records there are: the tree's own entry count (O(1)); getCount() would walk every leaf page and so map the whole file. */
  entryCount(): number {
    return (this.#db.getStats() as { entryCount: number }).entryCount;
  }

  /** Counts every record; the size is in the value's header, so nothing is decoded. */
  tallyAll(): Tally {
    const tally = emptyTally();
    for (const { key, value } of this.#db.getRange()) count(tally, keyPriority(key), storedSize(value), 1);
    return tally;
  }

  /** Stores the records; every one is counted, whether it was new or replaced one with its key. */
  appendInTxn(recs: readonly Rec[]): Tally {
    const tally = emptyTally();
    const key = this.#key;
    // MDB_APPEND skips the tree search; it is only valid past the last key, which is the usual
    // case (newer records of the highest priority cached).
    let [lastPriority, lastSeq] = this.#lastKeyInTxn();
    for (const rec of recs) {
      const append = rec.priority > lastPriority || (rec.priority === lastPriority && rec.seq > lastSeq);
      this.#db.putSync(recordKey(rec.priority, rec.seq, key), encodeRecord(rec, this.#cipher), append ? APPEND : OVERWRITE);
      if (append) {
        lastPriority = rec.priority;
        lastSeq = rec.seq;
      }
      count(tally, rec.priority, rec.size, 1);
    }
    return tally;
  }

  /** The largest record key as [priority, seq] ([0, 0] when empty), read inside the transaction. */
  #lastKeyInTxn(): [number, number] {
    for (const key of this.#db.getKeys({ reverse: true, limit: 1 })) return [keyPriority(key), keySeq(key)];
    return [0, 0];
  }

  /**
   * Evicts in key order (lowest priority first, oldest first within a priority, never a protected seq)
   * until at least `excessMessages` and `excessBytes` are gone. `onEvict` hears each seq as it goes.
   */
  evictInTxn(excessMessages: number, excessBytes: number, isProtected?: (seq: number) => boolean, onEvict?: (seq: number) => void): Eviction {
    const eviction = noEviction();
    if (excessMessages <= 0 && excessBytes <= 0) return eviction;
    // Key order is eviction order; the size is in the value's header, so nothing is decoded.
    for (const { key, value } of this.#db.getRange()) {
      const seq = keySeq(key);
      if (isProtected?.(seq)) continue;
      const priority = keyPriority(key);
      const size = storedSize(value);
      this.#db.removeSync(key);
      count(eviction, priority, size, 1);
      eviction.seqs.push(seq);
      onEvict?.(seq);
      if (eviction.messages >= excessMessages && eviction.bytes >= excessBytes) break;
    }
    return eviction;
  }

  /** Evicts these records (those still cached and not protected). */
  evictRecordsInTxn(victims: ReadonlyArray<{ priority: number; seq: number }>, isProtected: (seq: number) => boolean): Eviction {
    const eviction = noEviction();
    for (const { priority, seq } of victims) {
      if (isProtected(seq)) continue;
      const key = recordKey(priority, seq, this.#key);
      const value = this.#db.get(key);
      if (!value) continue;
      this.#db.removeSync(key);
      count(eviction, priority, sizeOrZero(value), 1);
      eviction.seqs.push(seq);
    }
    return eviction;
  }

  /** Removes these records; one already gone (evicted) is not counted. */
  removeInTxn(recs: readonly Rec[]): Tally {
    const tally = emptyTally();
    const key = this.#key;
    for (const rec of recs) {
      if (!this.#db.doesExist(recordKey(rec.priority, rec.seq, key))) continue;
      this.#db.removeSync(key);
      count(tally, rec.priority, rec.size, 1);
    }
    return tally;
  }

  /**
   * Removes every record whose seq is in one of the inclusive ranges, but those `keep` names: each
   * priority's part of a range is one key range, so nothing is decoded.
   */
  removeRangesInTxn(ranges: ReadonlyArray<readonly [number, number]>, keep?: (seq: number) => boolean): Tally {
    const tally = emptyTally();
    for (const [from, to] of ranges) {
      if (to < from) continue;
      for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) {
        for (const { key, value } of this.#db.getRange({ start: recordKey(p, from), end: recordKey(p, to + 1) })) {
          if (keep?.(keySeq(key))) continue;
          this.#db.removeSync(key);
          count(tally, p, sizeOrZero(value), 1);
        }
      }
    }
    return tally;
  }

  /** Removes undecodable records; `onRemoved` hears each one that was still cached, in the same transaction. */
  removeUnreadableInTxn(unreadable: readonly UnreadableRecord[], onRemoved: (record: UnreadableRecord) => void): Tally {
    const tally = emptyTally();
    for (const u of unreadable) {
      const key = recordKey(u.priority, u.seq, this.#key);
      if (!this.#db.doesExist(key)) continue;
      this.#db.removeSync(key);
      count(tally, u.priority, sizeOrZero(u.stored), 1);
      onRemoved(u);
    }
    return tally;
  }

  /**
   * The first `count` unprotected records in eviction order (lowest priority first, oldest first within
   * it), read from the last commit without changing anything: the disk-full path weighs them against
   * the records waiting in memory before it evicts either.
   */
  evictionCandidates(count: number, isProtected: (seq: number) => boolean): Array<{ priority: number; seq: number }> {
    const out: Array<{ priority: number; seq: number }> = [];
    if (count <= 0) return out;
    for (const key of this.#db.getKeys()) {
      const seq = keySeq(key);
      if (isProtected(seq)) continue;
      out.push({ priority: keyPriority(key), seq });
      if (out.length >= count) break;
    }
    return out;
  }

  /**
   * Oldest committed records, in seq order, within both limits (at least one if any exists). A record
   * that cannot be decoded is returned apart, so the drain can dead-letter it and go on.
   */
  readOldest(maxMessages: number, maxBytes: number, skip?: ReadonlySet<number>, afterSeq = 0): OldestRead {
    const recs: Rec[] = [];
    const unreadable: UnreadableRecord[] = [];
    let bytes = 0;
    for (const { key, value } of recordsBySeq(this.#db, { afterSeq })) {
      const seq = keySeq(key);
      if (skip?.has(seq)) continue;
      if (recs.length + unreadable.length >= maxMessages) break;
      let rec: Rec;
      try {
        rec = decodeRecord(seq, value, this.#cipher);
      } catch (err) {
        unreadable.push({ seq, priority: keyPriority(key), stored: Buffer.from(value), reason: (err as Error).message });
        continue;
      }
      if (recs.length > 0 && bytes + rec.size > maxBytes) break;
      recs.push(rec);
      bytes += rec.size;
    }
    return { recs, unreadable };
  }

  /** The cached records among `seqs` (a recovered in-flight packet's readings). */
  readSeqs(seqs: readonly number[]): Rec[] {
    return this.readSeqsOrUnreadable(seqs).recs;
  }

  /** The cached records among `seqs`, and those of them that cannot be decoded, apart. */
  readSeqsOrUnreadable(seqs: readonly number[]): OldestRead {
    const recs: Rec[] = [];
    const unreadable: UnreadableRecord[] = [];
    // The priority is not known here: look in each (a recovered packet's, or requeued dead letters).
    for (const seq of seqs) {
      for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) {
        const bytes = this.#db.get(recordKey(p, seq));
        if (!bytes) continue;
        try {
          recs.push(decodeRecord(seq, bytes, this.#cipher));
        } catch (err) {
          unreadable.push({ seq, priority: p, stored: Buffer.from(bytes), reason: (err as Error).message });
        }
        break;
      }
    }
    return { recs, unreadable };
  }

  /** Whether a record with this seq is cached (any priority). */
  has(seq: number): boolean {
    for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) if (this.#db.doesExist(recordKey(p, seq))) return true;
    return false;
  }

  /** The wall-clock stamp of the oldest record after `afterSeq`, for oldestAgeMs (0 when none). */
  oldestTimestamp(afterSeq = 0): number {
    return this.readOldest(1, Number.MAX_SAFE_INTEGER, undefined, afterSeq).recs[0]?.ts ?? 0;
  }
}

export function emptyTally(): Tally {
  return { messages: 0, bytes: 0, byPriority: new Array<number>(10).fill(0) };
}

export function noEviction(): Eviction {
  return { ...emptyTally(), seqs: [] };
}

/** Counts one message of `priority` and `size` in (sign 1) or out (sign -1). */
export function count(tally: Tally, priority: number, size: number, sign: 1 | -1): void {
  tally.messages += sign;
  tally.bytes += sign * size;
  tally.byPriority[priority - 1]! += sign;
}

/** Adds `change` to `totals` (sign 1) or takes it out (sign -1). */
export function addTally(totals: Tally, change: Tally, sign: 1 | -1): void {
  totals.messages += sign * change.messages;
  totals.bytes += sign * change.bytes;
  for (let i = 0; i < totals.byPriority.length; i++) totals.byPriority[i]! += sign * (change.byPriority[i] ?? 0);
}

/** The accounted size from a record's header; 0 when the header itself is damaged. */
function sizeOrZero(stored: Uint8Array): number {
  try {
    return storedSize(stored);
  } catch {
    return 0;
  }
}
