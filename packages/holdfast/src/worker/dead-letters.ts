import type { Database } from 'lmdb';
import type { DeadLetter } from '../protocol.js';
import type { CacheCipher } from './cipher.js';
import { openValue, recordSize, sealValue, type Rec } from './record.js';

/** A dead letter as stored: with a cacheKey, topic and payload are sealed together. */
type StoredDeadLetter = Omit<DeadLetter, 'topic' | 'payload'> & { flags: number; topic?: string; payload?: Uint8Array; sealed?: Uint8Array; unreadable?: boolean };

/**
 * The `dead` table: messages the broker refused, or that could not be sent at all, each with its
 * reason, keyed by seq. Writes are *InTxn calls that join the cache transaction that removes the
 * records, so a reading is always either queued or dead-lettered, never both or neither.
 */
export class DeadLetterTable {
  readonly #db: Database<StoredDeadLetter, number>;
  readonly #cipher: CacheCipher | undefined;

  constructor(db: Database<StoredDeadLetter, number>, cipher: CacheCipher | undefined) {
    this.#db = db;
    this.#cipher = cipher;
  }

  /** Keeps refused records, with the reason, in the dead-letter table. */
  putInTxn(recs: readonly Rec[], reason: string): void {
    for (const rec of recs) {
      const payload = Buffer.from(typeof rec.payload === 'string' ? Buffer.from(rec.payload) : rec.payload);
      const base = { seq: rec.seq, priority: rec.priority, ts: rec.ts, reason, flags: rec.flags };
      const letter: StoredDeadLetter = this.#cipher ? { ...base, sealed: sealValue([rec.topic, payload], this.#cipher) } : { ...base, topic: rec.topic, payload };
      this.#db.putSync(rec.seq, letter);
    }
  }

  /**
   * A cached record that cannot be decoded (damaged, or sealed under a key that no longer opens it):
   * its stored bytes are kept as they were, for forensics. It cannot be requeued.
   */
  putUnreadableInTxn(seq: number, priority: number, stored: Uint8Array, reason: string): void {
    this.#db.putSync(seq, { seq, priority, ts: 0, reason, flags: 0, topic: '', payload: Buffer.from(stored), unreadable: true });
  }

  list(): DeadLetter[] {
    const out: DeadLetter[] = [];
    for (const { value } of this.#db.getRange()) {
      const { flags: _flags, ...letter } = this.#read(value);
      out.push(letter);
    }
    return out;
  }

  /** The dead letters to send again (all, or these seqs), as records; unreadable ones are left. */
  takeForRequeue(seqs: readonly number[] | undefined): Rec[] {
    const wanted = seqs ? new Set(seqs) : undefined;
    const recs: Rec[] = [];
    for (const { value } of this.#db.getRange()) {
      if (value.unreadable || (wanted && !wanted.has(value.seq))) continue;
      const d = this.#read(value);
      recs.push({ seq: d.seq, topic: d.topic, payload: d.payload, priority: d.priority, flags: d.flags, ts: d.ts, size: recordSize(d.topic, d.payload) });
    }
    return recs;
  }

  has(seq: number): boolean {
    return this.#db.doesExist(seq);
  }

  removeInTxn(recs: readonly Rec[]): void {
    for (const rec of recs) this.#db.removeSync(rec.seq);
  }

  #read(stored: StoredDeadLetter): DeadLetter & { flags: number } {
    const [topic, payload] = stored.sealed ? (openValue(stored.sealed, this.#cipher) as [string, Uint8Array]) : [stored.topic ?? '', stored.payload ?? new Uint8Array()];
    return { seq: stored.seq, topic, payload: Buffer.from(payload), priority: stored.priority, ts: stored.ts, reason: stored.reason, flags: stored.flags ?? 1 };
  }
}
