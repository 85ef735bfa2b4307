import type { Database, RootDatabase } from 'lmdb';
import { ErrorCodes, HoldfastError } from '../errors.js';
import { keyCheckMatches, sealKeyCheck, type CacheCipher } from './cipher.js';
import { DeadLetterTable } from './dead-letters.js';
import { OutgoingTable } from './outgoing-table.js';
import { RequeuedTable } from './requeued-table.js';
import type { Rec } from './record.js';
import { addTally, emptyTally, noEviction, RecordsTable, type CachedRecords, type DoneRecords, type Eviction, type Tally, type UnreadableRecord } from './records-table.js';
import { RECORDS_DB } from './cache-layout.js';

/** How an append runs, besides storing its records. */
export interface AppendOptions {
  /** Runs in the same transaction. */
  alsoInTxn?: () => void;
  /** Seqs that must never be evicted. */
  isProtected?: (seq: number) => boolean;
  /** Hears each seq the transaction evicts, as it happens, before the commit. */
  onEvict?: (seq: number) => void;
  /** Delivered records to take out before evicting anything pending. */
  done?: DoneRecords;
  /** The highest seq appendedThrough may reach (evaluated inside the transaction). */
  watermarkCap?: () => number;
}

export interface CacheLimits {
  messages: number;
  bytes: number;
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

/**
 * The LMDB cache. Tables: `records` (records-table.ts), `meta` (format, key check, seq epoch,
 * appendedThrough, totals), `outgoing` (MQTT.js's persisted in-flight packets) and `dead` (refused
 * messages). The Cache runs the write transactions and keeps the totals.
 *
 * Totals change only inside the write transactions that change the records, which lmdb-js runs in
 * issue order, and are stored in the same transaction: they are exact and survive any crash. Inside
 * a transaction callback every write is a *Sync call: it joins the open transaction, and there is no
 * per-write promise left to reject unobserved if the commit fails (disk full).
 */
export class Cache {
  readonly #root: RootDatabase;
  readonly #records: RecordsTable;
  readonly #meta: Database<unknown, string>;
  /** MQTT.js's persisted in-flight packets. */
  readonly outgoing: OutgoingTable;
  /** Refused and unreadable messages, with their reasons. */
  readonly dead: DeadLetterTable;
  /** Dead letters back in the cache below the delivered floor. */
  readonly requeued: RequeuedTable;
  readonly #cipher: CacheCipher | undefined;
  readonly #limits: CacheLimits;
  /** The totals of the records, as of the last write issued (index 0..9 of byPriority = priority 1..10). */
  readonly counters: Tally;
  #lastWrite: Promise<unknown> = Promise.resolve();
  #appendedThrough: number;
  /** A commit failed after its callback changed the totals: reload them before the next write. */
  #recountNeeded = false;

  constructor(root: RootDatabase, limits: CacheLimits, cipher?: CacheCipher) {
    this.#root = root;
    this.#limits = limits;
    this.#cipher = cipher;
    this.#records = new RecordsTable(root.openDB<Buffer, Buffer>({ name: RECORDS_DB, encoding: 'binary', keyEncoding: 'binary' }), cipher);
    this.#meta = root.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
    this.outgoing = new OutgoingTable(root.openDB({ name: 'outgoing', encoding: 'msgpack' }), cipher);
    this.dead = new DeadLetterTable(root.openDB({ name: 'dead', encoding: 'msgpack' }), cipher);
    this.requeued = new RequeuedTable(root.openDB({ name: 'requeued', encoding: 'msgpack' }));
    const format = this.#meta.get('format');
    checkFormat(format);
    this.#checkKey();
    if (format !== CACHE_FORMAT) this.#meta.putSync('format', CACHE_FORMAT);
    this.#appendedThrough = (this.#meta.get('appendedThrough') as number | undefined) ?? 0;
    const stored = this.#meta.get('counters') as Tally | undefined;
    this.counters = stored && stored.messages === this.#records.entryCount() ? stored : this.#recount();
  }

  /** The records, to read; every write goes through the Cache, which keeps the totals. */
  get records(): CachedRecords {
    return this.#records;
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
  #recount(): Tally {
    return this.#root.transactionSync(() => {
      const counters = this.#records.tallyAll();
      this.#meta.putSync('counters', counters);
      return counters;
    });
  }

  /**
   * Durably reserves the next seq epoch (one small synchronous commit per open), above `above`: the
   * highest epoch the files kept outside the cache hold (progress file, intake log), which a fresh cache
   * after a quarantine would otherwise hand out again.
   */
  reserveEpoch(above = 0): number {
    return this.#root.transactionSync(() => {
      const epoch = Math.max((this.#meta.get('epoch') as number | undefined) ?? 0, above) + 1;
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
   * priority, never a protected seq) until the cache is within its limits.
   */
  append(recs: readonly Rec[], how: AppendOptions = {}): Promise<Eviction> {
    const { alsoInTxn, isProtected, onEvict, done, watermarkCap } = how;
    let eviction = noEviction();
    let through = 0;
    return this.#write(() => {
      // The committed mark, read inside the transaction: a raise by a transaction that failed to
      // commit was rolled back with it and must not be written again by this one.
      through = (this.#meta.get('appendedThrough') as number | undefined) ?? 0;
      addTally(this.counters, this.#records.appendInTxn(recs), 1);
      // A watermark, not a maximum: it never passes a reading still on its way into the cache (an
      // older append that failed, or waits), which a replay after a crash must not skip.
      let newest = 0;
      for (const rec of recs) if (rec.seq > newest) newest = rec.seq;
      through = Math.max(through, Math.min(newest, watermarkCap?.() ?? newest));
      if (recs.length > 0) this.#meta.putSync('appendedThrough', through);
      alsoInTxn?.();
      if (done && (this.counters.messages > this.#limits.messages || this.counters.bytes > this.#limits.bytes)) {
        addTally(this.counters, this.#records.removeRangesInTxn([[1, done.through]], done.keep), -1);
      }
      eviction = this.#records.evictInTxn(this.counters.messages - this.#limits.messages, this.counters.bytes - this.#limits.bytes, isProtected, this.#evicting(onEvict));
      this.#storeTotalsInTxn(eviction, -1);
    }).then(() => {
      if (through > this.#appendedThrough) this.#appendedThrough = through;
      return eviction;
    });
  }

  /** Frees space when the disk is full: takes out what is done, then evicts at least `messages` records by priority. */
  evict(messages: number, isProtected?: (seq: number) => boolean, done?: DoneRecords): Promise<Eviction> {
    let eviction = noEviction();
    return this.#write(() => {
      const freed = done ? this.#records.removeRangesInTxn([[1, done.through]], done.keep) : emptyTally();
      addTally(this.counters, freed, -1);
      eviction = this.#records.evictInTxn(messages - freed.messages, 0, isProtected, this.#evicting());
      this.#storeTotalsInTxn(eviction, -1);
    }).then(() => eviction);
  }

  /** An evicted record leaves the requeued list with it (inside the transaction), then `onEvict` hears it. */
  #evicting(onEvict?: (seq: number) => void): (seq: number) => void {
    return (seq) => {
      this.requeued.removeInTxn([seq]);
      onEvict?.(seq);
    };
  }

  /** Evicts these records (those still cached), in one transaction. */
  evictRecords(victims: ReadonlyArray<{ priority: number; seq: number }>, isProtected: (seq: number) => boolean): Promise<Eviction> {
    let eviction = noEviction();
    return this.#write(() => {
      eviction = this.#records.evictRecordsInTxn(victims, isProtected);
      this.#storeTotalsInTxn(eviction, -1);
    }).then(() => eviction);
  }

  /** Removes delivered (or dead-lettered) records, and whatever `alsoInTxn` does, in one transaction. */
  remove(recs: readonly Rec[], alsoInTxn?: () => void): Promise<void> {
    return this.#write(() => {
      this.#storeTotalsInTxn(this.#records.removeInTxn(recs), -1);
      alsoInTxn?.();
    });
  }

  /**
   * Removes every record whose seq is in one of the inclusive ranges, in one transaction: delivered
   * records, which leave the cache in batches (DeliveryLedger). Resolves with how many went.
   */
  removeRanges(ranges: ReadonlyArray<readonly [number, number]>, keep?: (seq: number) => boolean): Promise<number> {
    let removed = 0;
    return this.#write(() => {
      const gone = this.#records.removeRangesInTxn(ranges, keep);
      removed = gone.messages;
      if (removed > 0) this.#storeTotalsInTxn(gone, -1);
    }).then(() => removed);
  }

  removeThrough(floor: number, keep?: (seq: number) => boolean): Promise<void> {
    return this.removeRanges([[1, floor]], keep).then(() => undefined);
  }

  /** Removes undecodable records and keeps their bytes as dead letters, in one transaction. */
  deadLetterUnreadable(unreadable: readonly UnreadableRecord[]): Promise<void> {
    return this.#write(() => {
      const gone = this.#records.removeUnreadableInTxn(unreadable, (u) => {
        this.dead.putUnreadableInTxn(u.seq, u.priority, u.stored, `unreadable cache record: ${u.reason}`);
        this.requeued.removeInTxn([u.seq]);
      });
      this.#storeTotalsInTxn(gone, -1);
    });
  }

  /** Changes the totals by what the transaction stored (1) or removed (-1), and stores them with it. */
  #storeTotalsInTxn(change: Tally, sign: 1 | -1): void {
    addTally(this.counters, change, sign);
    this.#meta.putSync('counters', this.counters);
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
    const stored = this.#meta.get('counters') as Tally | undefined;
    Object.assign(this.counters, stored ?? emptyTally());
    this.#recountNeeded = false;
  }

  /** Resolves when every write issued so far is committed and visible to reads. */
  settled(): Promise<void> {
    return this.#lastWrite.then(
      () => undefined,
      () => undefined,
    );
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
