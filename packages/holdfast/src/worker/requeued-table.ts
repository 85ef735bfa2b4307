import type { Database } from 'lmdb';
import type { Rec } from './record.js';

/**
 * The `requeued` table: seqs of dead letters put back into the cache, until each is sent (or evicted,
 * or refused again). They keep their old seqs, which the delivered floor may already cover, so the
 * floor stops below them and nothing the floor covers is swept from the cache while one is listed:
 * a requeue survives a crash or a close.
 */
export class RequeuedTable {
  readonly #db: Database<number, number>;

  constructor(db: Database<number, number>) {
    this.#db = db;
  }

  putInTxn(recs: readonly Rec[]): void {
    for (const rec of recs) this.#db.putSync(rec.seq, rec.priority);
  }

  /** Takes these seqs off the list (those not on it are ignored). */
  removeInTxn(seqs: readonly number[]): void {
    for (const seq of seqs) if (this.#db.doesExist(seq)) this.#db.removeSync(seq);
  }

  list(): number[] {
    return [...this.#db.getKeys()];
  }
}
