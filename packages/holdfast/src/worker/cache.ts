import type { Database, PutOptions, RootDatabase } from 'lmdb';
import { ErrorCodes, HoldfastError } from '../errors.js';
import type { DeadLetter } from '../protocol.js';
import { keyCheckMatches, sealKeyCheck, type CacheCipher } from './cipher.js';
import type { OutgoingEntry } from './outgoing-store.js';
import { decodeRecord, encodeRecord, openValue, recordSize, sealValue, storedSize, type Rec } from './record.js';
import { markWorking } from './working-mark.js';
import { KEY_BYTES, keyPriority, keySeq, MAX_PRIORITY, MIN_PRIORITY, recordKey, recordsBySeq, RECORDS_DB, type RecordsDb } from './cache-layout.js';


/** A dead letter as stored: with a cacheKey, topic and payload are sealed together. */
type StoredDeadLetter = Omit<DeadLetter, 'topic' | 'payload'> & { flags: number; topic?: string; payload?: Uint8Array; sealed?: Uint8Array };
type StoredOutgoing = Omit<OutgoingEntry, 'packet'> & { packet?: OutgoingEntry['packet']; sealed?: Uint8Array };

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

/** What an eviction removed, per priority (index 0..9 = priority 1..10). */
export interface Eviction {
  messages: number;
  bytes: number;
  byPriority: number[];
}

/**
 * The on-disk layout this code reads and writes, stored in meta. Another holdfast's cache is refused
 * (not quarantined: it is not damaged, and a downgrade must not destroy it).
 */
export const CACHE_FORMAT = 2;

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
  readonly #outgoing: Database<StoredOutgoing, number>;
  readonly #dead: Database<StoredDeadLetter, number>;
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
    this.#outgoing = root.openDB<StoredOutgoing, number>({ name: 'outgoing', encoding: 'msgpack' });
    this.#dead = root.openDB<StoredDeadLetter, number>({ name: 'dead', encoding: 'msgpack' });
    const format = this.#meta.get('format');
    checkFormat(format);
    this.#checkKey();
    if (format === undefined) this.#meta.putSync('format', CACHE_FORMAT);
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
   */
  append(recs: readonly Rec[], alsoInTxn?: () => void, isProtected?: (seq: number) => boolean): Promise<Eviction> {
    let eviction = noEviction();
    return this.#write(() => {
      const key = this.#key;
      // MDB_APPEND skips the tree search; it is only valid past the last key, which is the usual
      // case (newer records of the highest priority cached).
      let [lastPriority, lastSeq] = this.#lastKeyInTxn();
      for (const rec of recs) {
        const append = rec.priority > lastPriority || (rec.priority === lastPriority && rec.seq > lastSeq);
        this.#records.putSync(recordKey(rec.priority, rec.seq, key), encodeRecord(rec, this.#cipher), append ? APPEND : OVERWRITE);
        if (append) {
          lastPriority = rec.priority;
          lastSeq = rec.seq;
        }
        count(this.counters, rec.priority, rec.size, 1);
        if (rec.seq > this.#appendedThrough) this.#appendedThrough = rec.seq;
      }
      // Written on every append: a failed commit rolls it back, and the retry writes it again.
      if (recs.length > 0) this.#meta.putSync('appendedThrough', this.#appendedThrough);
      alsoInTxn?.();
      eviction = this.#evictInTxn(this.counters.messages - this.#limits.messages, this.counters.bytes - this.#limits.bytes, isProtected);
      this.#meta.putSync('counters', this.counters);
    }).then(() => eviction);
  }

  /** The largest record key as [priority, seq] ([0, 0] when empty), read inside the transaction. */
  #lastKeyInTxn(): [number, number] {
    for (const key of this.#records.getKeys({ reverse: true, limit: 1 })) return [keyPriority(key), keySeq(key)];
    return [0, 0];
  }

  /** Frees space when the disk is full: evicts at least `messages` records by priority. */
  evict(messages: number, isProtected?: (seq: number) => boolean): Promise<Eviction> {
    let eviction = noEviction();
    return this.#write(() => {
      eviction = this.#evictInTxn(messages, 0, isProtected);
      this.#meta.putSync('counters', this.counters);
    }).then(() => eviction);
  }

  #evictInTxn(excessMessages: number, excessBytes: number, isProtected?: (seq: number) => boolean): Eviction {
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

  /** Oldest committed records, in seq order, within both limits (at least one if any exists). */
  readOldest(maxMessages: number, maxBytes: number, skip?: ReadonlySet<number>): Rec[] {
    const out: Rec[] = [];
    let bytes = 0;
    for (const { key, value } of recordsBySeq(this.#records)) {
      const seq = keySeq(key);
      if (skip?.has(seq)) continue;
      if (out.length >= maxMessages) break;
      markWorking(seq);
      const rec = decodeRecord(seq, value, this.#cipher);
      if (out.length > 0 && bytes + rec.size > maxBytes) break;
      out.push(rec);
      bytes += rec.size;
    }
    markWorking(0);
    return out;
  }

  /** The cached records among `seqs` (a recovered in-flight packet's readings). */
  readSeqs(seqs: readonly number[]): Rec[] {
    const out: Rec[] = [];
    for (const seq of seqs) {
      const found = this.rawRecord(seq);
      if (!found) continue;
      markWorking(seq);
      out.push(decodeRecord(seq, found.bytes, this.#cipher));
    }
    markWorking(0);
    return out;
  }

  /** A record's priority and stored bytes, undecoded (undefined when it is not cached). */
  rawRecord(seq: number): { priority: number; bytes: Buffer } | undefined {
    // The priority is not known here: look in each (after a restart, for one packet or one record).
    for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) {
      const bytes = this.#records.get(recordKey(p, seq));
      if (bytes) return { priority: p, bytes };
    }
    return undefined;
  }

  /** Inside a transaction: keeps refused records, with the broker's reason, in the dead-letter table. */
  deadLetterInTxn(recs: readonly Rec[], reason: string): void {
    for (const rec of recs) {
      const payload = Buffer.from(typeof rec.payload === 'string' ? Buffer.from(rec.payload) : rec.payload);
      const base = { seq: rec.seq, priority: rec.priority, ts: rec.ts, reason, flags: rec.flags };
      const letter: StoredDeadLetter = this.#cipher ? { ...base, sealed: sealValue([rec.topic, payload], this.#cipher) } : { ...base, topic: rec.topic, payload };
      this.#dead.putSync(rec.seq, letter);
    }
  }

  #readDeadLetter(stored: StoredDeadLetter): DeadLetter & { flags: number } {
    const [topic, payload] = stored.sealed ? (openValue(stored.sealed, this.#cipher) as [string, Uint8Array]) : [stored.topic ?? '', stored.payload ?? new Uint8Array()];
    return { seq: stored.seq, topic, payload: Buffer.from(payload), priority: stored.priority, ts: stored.ts, reason: stored.reason, flags: stored.flags ?? 1 };
  }

  listDeadLetters(): DeadLetter[] {
    const out: DeadLetter[] = [];
    for (const { value } of this.#dead.getRange()) {
      const { flags: _flags, ...letter } = this.#readDeadLetter(value);
      out.push(letter);
    }
    return out;
  }

  /** Moves dead letters back into the records (in one transaction); resolves with their count. */
  async requeueDeadLetters(seqs: readonly number[] | undefined): Promise<number> {
    const wanted = seqs ? new Set(seqs) : undefined;
    const recs: Rec[] = [];
    for (const { value } of this.#dead.getRange()) {
      if (wanted && !wanted.has(value.seq)) continue;
      const d = this.#readDeadLetter(value);
      recs.push({ seq: d.seq, topic: d.topic, payload: d.payload, priority: d.priority, flags: d.flags, ts: d.ts, size: recordSize(d.topic, d.payload) });
    }
    if (recs.length === 0) return 0;
    await this.append(recs, () => {
      for (const rec of recs) this.#dead.removeSync(rec.seq);
    });
    return recs.length;
  }

  /** Inside a transaction: persists an in-flight packet (sealed with a cacheKey: it holds topic and payload). */
  putOutgoingInTxn(entry: OutgoingEntry): void {
    const stored: StoredOutgoing = this.#cipher
      ? { messageId: entry.messageId, seqs: entry.seqs, sealed: sealValue(entry.packet, this.#cipher) }
      : entry;
    this.#outgoing.putSync(entry.messageId, stored);
  }

  removeOutgoingInTxn(messageId: number): void {
    this.#outgoing.removeSync(messageId);
  }

  clearOutgoingInTxn(): void {
    for (const { key } of this.#outgoing.getRange()) this.#outgoing.removeSync(key);
  }

  listOutgoing(): OutgoingEntry[] {
    const out: OutgoingEntry[] = [];
    for (const { value } of this.#outgoing.getRange()) {
      const packet = value.sealed ? (openValue(value.sealed, this.#cipher) as OutgoingEntry['packet']) : value.packet!;
      out.push({ messageId: value.messageId, seqs: value.seqs, packet });
    }
    return out;
  }

  /** The wall-clock stamp of the oldest record, for oldestAgeMs (0 when empty). */
  oldestTimestamp(): number {
    return this.readOldest(1, Number.MAX_SAFE_INTEGER)[0]?.ts ?? 0;
  }

  async close(): Promise<void> {
    await this.settled();
    await this.#root.close();
  }
}

/** Refuses a cache written in another format (undefined: a new cache, stamped by the caller). */
export function checkFormat(format: unknown): void {
  if (format !== undefined && format !== CACHE_FORMAT) {
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

function noEviction(): Eviction {
  return emptyCounters();
}
