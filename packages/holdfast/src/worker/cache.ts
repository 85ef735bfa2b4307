import type { Database, PutOptions, RootDatabase } from 'lmdb';
import { ErrorCodes, HoldfastError } from '../errors.js';
import { keyCheckMatches, sealKeyCheck, type CacheCipher } from './cipher.js';
import { DeadLetterTable } from './dead-letters.js';
import { OutgoingTable } from './outgoing-table.js';
import { RequeuedTable } from './requeued-table.js';
import { decodeRecord, encodeRecord, storedSize, type Rec } from './record.js';
import { KEY_BYTES, keyPriority, keySeq, MAX_PRIORITY, MIN_PRIORITY, recordKey, recordsBySeq, RECORDS_DB, type RecordsDb } from './cache-layout.js';

export interface CacheLimits {
  messages: number;
  bytes: number;
}

interface Counters {
  messages: number;
  bytes: number;
  /** Index 0..9 = priority 1..10. */
  byPriority: number[];
}

/** What an eviction removed, per priority (index 0..9 = priority 1..10), and which seqs. */
export interface Eviction {
  messages: number;
  bytes: number;
  byPriority: number[];
  seqs: number[];
}

/**
 * Delivered records still in the cache, waiting for their batched removal: every seq at or below
 * `through` except those `keep` names (requeued dead letters). Before evicting anything pending, a
 * transaction over its limits takes these out first: they are done, and must not cost a reading.
 */
export interface DoneRecords {
  through: number;
  keep: (seq: number) => boolean;
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

/**
 * The on-disk layout this code reads and writes, stored in meta. Another holdfast's cache is refused
 * (not quarantined: it is not damaged, and a downgrade must not destroy it).
 */
export const CACHE_FORMAT = 3;
/**
 * Formats this code opens and upgrades. 2 kept the in-flight packet in the `outgoing` table, which 3
 * still reads (its packet is resent with its stored id) but no longer writes: format 3 keeps delivery
 * progress in the `progress` file, and a format-2 holdfast would resend what that file says is done.
 */
const UPGRADABLE_FORMATS: readonly unknown[] = [2];

const APPEND: PutOptions = { append: true };
const OVERWRITE: PutOptions = {};

const emptyCounters = (): Counters => ({ messages: 0, bytes: 0, byPriority: new Array<number>(10).fill(0) });

/**
 * The LMDB cache. Tables: `records` (keyed priority·seq, see cache-layout.ts: key order is the
 * eviction order, and publish order is a merge of the priorities by seq), `meta` (seq epoch, totals),
 * `outgoing` (MQTT.js's persisted in-flight packets) and `dead` (refused messages).
 *
 * Totals change only inside the write transactions that change the records, which lmdb-js runs in
 * issue order, and are stored in the same transaction: they are exact and survive any crash. Inside
 * a transaction callback every write is a *Sync call: it joins the open transaction, and there is no
 * per-write promise left to reject unobserved if the commit fails (disk full).
 */
export class Cache {
  readonly #root: RootDatabase;
  readonly #records: RecordsDb;
  readonly #meta: Database<unknown, string>;
  /** MQTT.js's persisted in-flight packets. */
  readonly outgoing: OutgoingTable;
  /** Refused and unreadable messages, with their reasons. */
  readonly dead: DeadLetterTable;
  /** Dead letters back in the cache below the delivered floor. */
  readonly requeued: RequeuedTable;
  readonly #cipher: CacheCipher | undefined;
  readonly #limits: CacheLimits;
  readonly counters: Counters;
  #lastWrite: Promise<unknown> = Promise.resolve();
  #appendedThrough: number;
  /** A commit failed after its callback changed the totals: reload them before the next write. */
  #recountNeeded = false;
  /** Reused for keys on the write path (LMDB copies the key on every call). */
  readonly #key = Buffer.allocUnsafe(KEY_BYTES);

  constructor(root: RootDatabase, limits: CacheLimits, cipher?: CacheCipher) {
    this.#root = root;
    this.#limits = limits;
    this.#cipher = cipher;
    this.#records = root.openDB<Buffer, Buffer>({ name: RECORDS_DB, encoding: 'binary', keyEncoding: 'binary' });
    this.#meta = root.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
    this.outgoing = new OutgoingTable(root.openDB({ name: 'outgoing', encoding: 'msgpack' }), cipher);
    this.dead = new DeadLetterTable(root.openDB({ name: 'dead', encoding: 'msgpack' }), cipher);
    this.requeued = new RequeuedTable(root.openDB({ name: 'requeued', encoding: 'msgpack' }));
    const format = this.#meta.get('format');
    checkFormat(format);
    this.#checkKey();
    if (format !== CACHE_FORMAT) this.#meta.putSync('format', CACHE_FORMAT);
    this.#appendedThrough = (this.#meta.get('appendedThrough') as number | undefined) ?? 0;
    const stored = this.#meta.get('counters') as Counters | undefined;
    // The tree's own entry count (O(1)); getCount() would walk every leaf page and so map the whole file.
    this.counters = stored && stored.messages === (this.#records.getStats() as { entryCount: number }).entryCount ? stored : this.#recount();
  }

  /**
   * A cache written with a key can only be opened with that key: a clear error, and nothing is
   * quarantined (the cache is fine; the key is wrong). The first open with a key records the check.
   */
  #checkKey(): void {
    const check = this.#meta.get('keyCheck') as Uint8Array | undefined;
    if (check === undefined) {
      if (this.#cipher) this.#meta.putSync('keyCheck', sealKeyCheck(this.#cipher));
      return;
    }
    if (!keyCheckMatches(check, this.#cipher)) {
      throw new HoldfastError(
        ErrorCodes.CACHE_KEY_MISMATCH,
        this.#cipher ? 'the cache was encrypted with a different cacheKey' : 'the cache is encrypted: open it with its cacheKey (or cacheKeyFile)',
      );
    }
  }

  /** Recomputes the totals from the records (stored totals missing or not matching them). */
  #recount(): Counters {
    const counters = emptyCounters();
    this.#root.transactionSync(() => {
      for (const { key, value } of this.#records.getRange()) count(counters, keyPriority(key), storedSize(value), 1);
      this.#meta.putSync('counters', counters);
    });
    return counters;
  }

  /** Durably reserves the next seq epoch (one small synchronous commit per open). */
  reserveEpoch(): number {
    return this.#root.transactionSync(() => {
      const epoch = ((this.#meta.get('epoch') as number | undefined) ?? 0) + 1;
      this.#meta.putSync('epoch', epoch);
      return epoch;
    });
  }

  get messages(): number {
    return this.counters.messages;
  }

  /**
   * The highest seq any committed append held. The intake log replays only seqs above it: every
   * seq at or below it reached the cache (and may since have been delivered, evicted or refused).
   */
  get appendedThrough(): number {
    return this.#appendedThrough;
  }

  /**
   * Appends records in one transaction, then evicts (lowest priority first, oldest first within a
   * priority, never a protected seq) until the cache is within its limits. `alsoInTxn` runs in the
   * same transaction (the outgoing store persists the in-flight packet atomically with a spill).
   * `onEvict` hears each seq the transaction evicts, as it happens, before the commit.
   */
  append(recs: readonly Rec[], alsoInTxn?: () => void, isProtected?: (seq: number) => boolean, onEvict?: (seq: number) => void, done?: DoneRecords): Promise<Eviction> {
    let eviction = noEviction();
    let through = 0;
    return this.#write(() => {
      const key = this.#key;
      // MDB_APPEND skips the tree search; it is only valid past the last key, which is the usual
      // case (newer records of the highest priority cached).
      let [lastPriority, lastSeq] = this.#lastKeyInTxn();
      // The committed mark, read inside the transaction: a raise by a transaction that failed to
      // commit was rolled back with it and must not be written again by this one.
      through = (this.#meta.get('appendedThrough') as number | undefined) ?? 0;
      for (const rec of recs) {
        const append = rec.priority > lastPriority || (rec.priority === lastPriority && rec.seq > lastSeq);
        this.#records.putSync(recordKey(rec.priority, rec.seq, key), encodeRecord(rec, this.#cipher), append ? APPEND : OVERWRITE);
        if (append) {
          lastPriority = rec.priority;
          lastSeq = rec.seq;
        }
        count(this.counters, rec.priority, rec.size, 1);
        if (rec.seq > through) through = rec.seq;
      }
      if (recs.length > 0) this.#meta.putSync('appendedThrough', through);
      alsoInTxn?.();
      if (done && (this.counters.messages > this.#limits.messages || this.counters.bytes > this.#limits.bytes)) this.#removeRangesInTxn([[1, done.through]], done.keep);
      eviction = this.#evictInTxn(this.counters.messages - this.#limits.messages, this.counters.bytes - this.#limits.bytes, isProtected, onEvict);
      this.#meta.putSync('counters', this.counters);
    }).then(() => {
      if (through > this.#appendedThrough) this.#appendedThrough = through;
      return eviction;
    });
  }

  /** The largest record key as [priority, seq] ([0, 0] when empty), read inside the transaction. */
  #lastKeyInTxn(): [number, number] {
    for (const key of this.#records.getKeys({ reverse: true, limit: 1 })) return [keyPriority(key), keySeq(key)];
    return [0, 0];
  }

  /** Frees space when the disk is full: takes out what is done, then evicts at least `messages` records by priority. */
  evict(messages: number, isProtected?: (seq: number) => boolean, done?: DoneRecords): Promise<Eviction> {
    let eviction = noEviction();
    return this.#write(() => {
      const freed = done ? this.#removeRangesInTxn([[1, done.through]], done.keep) : 0;
      eviction = this.#evictInTxn(messages - freed, 0, isProtected);
      this.#meta.putSync('counters', this.counters);
    }).then(() => eviction);
  }

  /**
   * The first `count` unprotected records in eviction order (lowest priority first, oldest first within
   * it), read from the last commit without changing anything: the disk-full path weighs them against
   * the records waiting in memory before it evicts either.
   */
  evictionCandidates(count: number, isProtected: (seq: number) => boolean): Array<{ priority: number; seq: number }> {
    const out: Array<{ priority: number; seq: number }> = [];
    if (count <= 0) return out;
    for (const key of this.#records.getKeys()) {
      const seq = keySeq(key);
      if (isProtected(seq)) continue;
      out.push({ priority: keyPriority(key), seq });
      if (out.length >= count) break;
    }
    return out;
  }

  /** Evicts these records (those still cached), in one transaction. */
  evictRecords(victims: ReadonlyArray<{ priority: number; seq: number }>, isProtected: (seq: number) => boolean): Promise<Eviction> {
    const eviction = noEviction();
    return this.#write(() => {
      for (const { priority, seq } of victims) {
        if (isProtected(seq)) continue;
        const key = recordKey(priority, seq, this.#key);
        const value = this.#records.get(key);
        if (!value) continue;
        const size = sizeOrZero(value);
        this.#records.removeSync(key);
        count(this.counters, priority, size, -1);
        count(eviction, priority, size, 1);
        eviction.seqs.push(seq);
      }
      this.#meta.putSync('counters', this.counters);
    }).then(() => eviction);
  }

  #evictInTxn(excessMessages: number, excessBytes: number, isProtected?: (seq: number) => boolean, onEvict?: (seq: number) => void): Eviction {
    const eviction = noEviction();
    if (excessMessages <= 0 && excessBytes <= 0) return eviction;
    // Key order is eviction order; the size is in the value's header, so nothing is decoded.
    for (const { key, value } of this.#records.getRange()) {
      const seq = keySeq(key);
      if (isProtected?.(seq)) continue;
      const priority = keyPriority(key);
      const size = storedSize(value);
      this.#records.removeSync(key);
      count(this.counters, priority, size, -1);
      count(eviction, priority, size, 1);
      eviction.seqs.push(seq);
      onEvict?.(seq);
      this.requeued.removeInTxn([seq]);
      if (eviction.messages >= excessMessages && eviction.bytes >= excessBytes) break;
    }
    return eviction;
  }

  /** Removes delivered (or dead-lettered) records, and whatever `alsoInTxn` does, in one transaction. */
  remove(recs: readonly Rec[], alsoInTxn?: () => void): Promise<void> {
    return this.#write(() => {
      const key = this.#key;
      for (const rec of recs) {
        // An evicted record is already gone; count only what is really removed.
        if (!this.#records.doesExist(recordKey(rec.priority, rec.seq, key))) continue;
        this.#records.removeSync(key);
        count(this.counters, rec.priority, rec.size, -1);
      }
      this.#meta.putSync('counters', this.counters);
      alsoInTxn?.();
    });
  }

  /** Runs writes in a transaction ordered after every earlier one. */
  write(action: () => void): Promise<void> {
    return this.#write(action);
  }

  #write(action: () => void): Promise<void> {
    const done = this.#root
      .transaction(() => {
        if (this.#recountNeeded) this.#recountInTxn();
        action();
      })
      .then(
        () => undefined,
        (err: Error & { commitError?: Promise<unknown> }) => {
          // lmdb-js rejects a second promise with the cause (e.g. ENOSPC); unobserved, it would be an
          // unhandled rejection and end the worker.
          err.commitError?.catch(() => undefined);
          this.#recountNeeded = true;
          throw err;
        },
      );
    this.#lastWrite = done;
    return done;
  }

  /**
   * The failed transaction was rolled back, and every committed one stored its totals with its
   * changes: the stored totals are the committed truth.
   */
  #recountInTxn(): void {
    const stored = this.#meta.get('counters') as Counters | undefined;
    Object.assign(this.counters, stored ?? emptyCounters());
    this.#recountNeeded = false;
  }

  /** Resolves when every write issued so far is committed and visible to reads. */
  settled(): Promise<void> {
    return this.#lastWrite.then(
      () => undefined,
      () => undefined,
    );
  }

  /**
   * Oldest committed records, in seq order, within both limits (at least one if any exists). A record
   * that cannot be decoded is returned apart, so the drain can dead-letter it and go on.
   */
  readOldest(maxMessages: number, maxBytes: number, skip?: ReadonlySet<number>, afterSeq = 0): OldestRead {
    const recs: Rec[] = [];
    const unreadable: UnreadableRecord[] = [];
    let bytes = 0;
    for (const { key, value } of recordsBySeq(this.#records, { afterSeq })) {
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
        const bytes = this.#records.get(recordKey(p, seq));
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


  /**
   * Removes every record whose seq is in one of the inclusive ranges, in one transaction: delivered
   * records, which leave the cache in batches (DeliveryLedger). Each priority's part of a range is one
   * key range, so nothing is decoded. Resolves with how many went.
   */
  removeRanges(ranges: ReadonlyArray<readonly [number, number]>, keep?: (seq: number) => boolean): Promise<number> {
    let removed = 0;
    return this.#write(() => {
      removed = this.#removeRangesInTxn(ranges, keep);
      if (removed > 0) this.#meta.putSync('counters', this.counters);
    }).then(() => removed);
  }

  #removeRangesInTxn(ranges: ReadonlyArray<readonly [number, number]>, keep?: (seq: number) => boolean): number {
    let removed = 0;
    for (const [from, to] of ranges) {
      if (to < from) continue;
      for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) {
        for (const { key, value } of this.#records.getRange({ start: recordKey(p, from), end: recordKey(p, to + 1) })) {
          if (keep?.(keySeq(key))) continue;
          this.#records.removeSync(key);
          count(this.counters, p, sizeOrZero(value), -1);
          removed++;
        }
      }
    }
    return removed;
  }

  removeThrough(floor: number, keep?: (seq: number) => boolean): Promise<void> {
    return this.removeRanges([[1, floor]], keep).then(() => undefined);
  }

  /** Whether a record with this seq is cached (any priority). */
  has(seq: number): boolean {
    for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) if (this.#records.doesExist(recordKey(p, seq))) return true;
    return false;
  }

  /** Removes undecodable records and keeps their bytes as dead letters, in one transaction. */
  deadLetterUnreadable(unreadable: readonly UnreadableRecord[]): Promise<void> {
    return this.#write(() => {
      for (const u of unreadable) {
        const key = recordKey(u.priority, u.seq, this.#key);
        if (!this.#records.doesExist(key)) continue;
        this.#records.removeSync(key);
        count(this.counters, u.priority, sizeOrZero(u.stored), -1);
        this.dead.putUnreadableInTxn(u.seq, u.priority, u.stored, `unreadable cache record: ${u.reason}`);
        this.requeued.removeInTxn([u.seq]);
      }
      this.#meta.putSync('counters', this.counters);
    });
  }

  /** The wall-clock stamp of the oldest record after `afterSeq`, for oldestAgeMs (0 when none). */
  oldestTimestamp(afterSeq = 0): number {
    return this.readOldest(1, Number.MAX_SAFE_INTEGER, undefined, afterSeq).recs[0]?.ts ?? 0;
  }

  async close(): Promise<void> {
    await this.settled();
    await this.#root.close();
  }
}

/** Refuses a cache written in another format (undefined: a new cache, stamped by the caller). */
export function checkFormat(format: unknown): void {
  if (format !== undefined && format !== CACHE_FORMAT && !UPGRADABLE_FORMATS.includes(format)) {
    throw new HoldfastError(
      ErrorCodes.CACHE_FORMAT_UNSUPPORTED,
      `the cache is in format ${String(format)}, and this holdfast reads format ${CACHE_FORMAT}: use the holdfast version that wrote it, or move the cache aside`,
      { details: { format, supported: CACHE_FORMAT } },
    );
  }
}

function count(c: Counters, priority: number, size: number, sign: 1 | -1): void {
  c.messages += sign;
  c.bytes += sign * size;
  c.byPriority[priority - 1]! += sign;
}

/** The accounted size from a record's header; 0 when the header itself is damaged. */
function sizeOrZero(stored: Uint8Array): number {
  try {
    return storedSize(stored);
  } catch {
    return 0;
  }
}

function noEviction(): Eviction {
  return { ...emptyCounters(), seqs: [] };
}
