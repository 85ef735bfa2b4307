import { chmodSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { ErrorCodes, HoldfastError } from '../errors.js';
import type { DeadLetter } from '../protocol.js';
import { decodeRecord, encodeRecord, recordSize, type Rec } from './record.js';

export const CACHE_FILE = 'cache.mdb';
const LOCK_SUFFIX = '-lock';

interface Counters {
  messages: number;
  bytes: number;
  /** Index 0..9 = priority 1..10. */
  byPriority: number[];
}

export interface QuarantineReport {
  movedTo: string;
  reason: string;
}

/**
 * The LMDB cache: records keyed by seq (ordered-binary number keys keep seq order), a meta table for
 * the seq epoch and running totals, and the persisted MQTT outgoing store. Totals are written in the
 * same transaction as the records they count, so they can never disagree after a crash.
 */
export class Cache {
  readonly #root: RootDatabase;
  readonly #records: Database<Buffer, number>;
  readonly #meta: Database<unknown, string>;
  readonly outgoing: Database<unknown, number>;
  readonly #dead: Database<DeadLetter, number>;
  readonly counters: Counters;
  readonly quarantined: QuarantineReport | undefined;
  #lastWrite: Promise<unknown> = Promise.resolve();

  private constructor(root: RootDatabase, quarantined: QuarantineReport | undefined) {
    this.#root = root;
    this.#records = root.openDB<Buffer, number>({ name: 'records', encoding: 'binary' });
    this.#meta = root.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
    this.outgoing = root.openDB<unknown, number>({ name: 'outgoing', encoding: 'msgpack' });
    this.#dead = root.openDB<DeadLetter, number>({ name: 'dead', encoding: 'msgpack' });
    this.quarantined = quarantined;
    const stored = this.#meta.get('counters') as Counters | undefined;
    this.counters = stored ?? { messages: 0, bytes: 0, byPriority: new Array<number>(10).fill(0) };
    if (this.counters.messages !== this.#records.getCount()) throw new Error('cache totals disagree with its records');
  }

  /**
   * Opens (or creates) the cache in `dir` (0700, files 0600). A cache that cannot be opened or read
   * is renamed aside for forensics, never deleted, and a fresh one is started.
   */
  static open(dir: string): Cache {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    } catch (err) {
      throw new HoldfastError(ErrorCodes.CACHE_UNAVAILABLE, `cannot create cache directory ${dir}: ${(err as Error).message}`, {
        cause: err,
        details: { cacheDir: dir },
      });
    }
    const path = join(dir, CACHE_FILE);
    try {
      return new Cache(Cache.#openRoot(path), undefined);
    } catch (err) {
      if (!existsSync(path)) {
        throw new HoldfastError(ErrorCodes.CACHE_UNAVAILABLE, `cannot open cache ${path}: ${(err as Error).message}`, { cause: err });
      }
      const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      renameSync(path, movedTo);
      if (existsSync(path + LOCK_SUFFIX)) renameSync(path + LOCK_SUFFIX, movedTo + LOCK_SUFFIX);
      return new Cache(Cache.#openRoot(path), { movedTo, reason: (err as Error).message });
    }
  }

  static #openRoot(path: string): RootDatabase {
    const root = openLmdb({ path, maxDbs: 8, noSubdir: true });
    for (const file of [path, path + LOCK_SUFFIX]) if (existsSync(file)) chmodSync(file, 0o600);
    return root;
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
   * Appends records in one transaction. `alsoInTxn` runs inside the same transaction (the outgoing
   * store uses it to persist the in-flight packet atomically with the spill).
   */
  append(recs: readonly Rec[], alsoInTxn?: () => void): Promise<void> {
    const c = this.counters;
    for (const rec of recs) {
      c.messages++;
      c.bytes += rec.size;
      c.byPriority[rec.priority - 1]! += 1;
    }
    const snapshot = { messages: c.messages, bytes: c.bytes, byPriority: [...c.byPriority] };
    return this.#write(() => {
      for (const rec of recs) this.#records.put(rec.seq, encodeRecord(rec));
      this.#meta.put('counters', snapshot);
      alsoInTxn?.();
    });
  }

  /** Removes delivered records (and whatever `alsoInTxn` does) in one transaction. */
  remove(recs: readonly Rec[], alsoInTxn?: () => void): Promise<void> {
    const c = this.counters;
    for (const rec of recs) {
      c.messages--;
      c.bytes -= rec.size;
      c.byPriority[rec.priority - 1]! -= 1;
    }
    const snapshot = { messages: c.messages, bytes: c.bytes, byPriority: [...c.byPriority] };
    return this.#write(() => {
      for (const rec of recs) this.#records.remove(rec.seq);
      this.#meta.put('counters', snapshot);
      alsoInTxn?.();
    });
  }

  /** Runs writes in a transaction ordered after every earlier one. */
  write(action: () => void): Promise<void> {
    return this.#write(action);
  }

  #write(action: () => void): Promise<void> {
    const done = this.#root.transaction(action).then(() => undefined);
    this.#lastWrite = done;
    return done;
  }

  /** Resolves when every write issued so far is committed and visible to reads. */
  settled(): Promise<void> {
    return this.#lastWrite.then(() => undefined);
  }

  /** Oldest committed records, in seq order, within both limits (at least one if any exists). */
  readOldest(maxMessages: number, maxBytes: number, skip?: ReadonlySet<number>): Rec[] {
    const out: Rec[] = [];
    let bytes = 0;
    for (const { key, value } of this.#records.getRange({ limit: maxMessages + (skip?.size ?? 0) })) {
      if (skip?.has(key)) continue;
      const rec = decodeRecord(key, value);
      if (out.length > 0 && (out.length >= maxMessages || bytes + rec.size > maxBytes)) break;
      out.push(rec);
      bytes += rec.size;
    }
    return out;
  }

  /** The cached records among `seqs` (a recovered in-flight packet's readings). */
  readSeqs(seqs: readonly number[]): Rec[] {
    const out: Rec[] = [];
    for (const seq of seqs) {
      const bytes = this.#records.get(seq);
      if (bytes) out.push(decodeRecord(seq, bytes));
    }
    return out;
  }

  /** Inside a transaction: keeps refused records, with the broker's reason, in the dead-letter table. */
  deadLetterInTxn(recs: readonly Rec[], reason: string): void {
    for (const rec of recs) {
      const payload = typeof rec.payload === 'string' ? Buffer.from(rec.payload) : Buffer.from(rec.payload);
      this.#dead.put(rec.seq, { seq: rec.seq, topic: rec.topic, payload, priority: rec.priority, ts: rec.ts, reason, flags: rec.flags } as DeadLetter);
    }
  }

  listDeadLetters(): DeadLetter[] {
    const out: DeadLetter[] = [];
    for (const { value } of this.#dead.getRange()) {
      const { seq, topic, payload, priority, ts, reason } = value;
      out.push({ seq, topic, payload: Buffer.from(payload), priority, ts, reason });
    }
    return out;
  }

  /** Moves dead letters back into the records (in one transaction); resolves with their count. */
  async requeueDeadLetters(seqs: readonly number[] | undefined): Promise<number> {
    const wanted = seqs ? new Set(seqs) : undefined;
    const recs: Rec[] = [];
    for (const { value } of this.#dead.getRange()) {
      if (wanted && !wanted.has(value.seq)) continue;
      const flags = (value as DeadLetter & { flags?: number }).flags ?? 1;
      recs.push({ seq: value.seq, topic: value.topic, payload: Buffer.from(value.payload), priority: value.priority, flags, ts: value.ts, size: recordSize(value.topic, value.payload) });
    }
    if (recs.length === 0) return 0;
    await this.append(recs, () => {
      for (const rec of recs) this.#dead.remove(rec.seq);
    });
    return recs.length;
  }

  /** The wall-clock stamp of the oldest record, for oldestAgeMs (0 when empty). */
  oldestTimestamp(): number {
    const first = this.readOldest(1, Number.MAX_SAFE_INTEGER);
    return first[0]?.ts ?? 0;
  }

  async close(): Promise<void> {
    await this.settled().catch(() => undefined);
    await this.#root.close();
  }
}
