import type { Rec } from './record.js';

/** FIFO of records with O(1) push/shift and running byte totals; compacts lazily. */
export class MemoryQueue {
  #items: Array<Rec | undefined> = [];
  #head = 0;
  bytes = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(rec: Rec): void {
    this.#items.push(rec);
    this.bytes += rec.size;
  }

  peek(): Rec | undefined {
    return this.#items[this.#head];
  }

  shift(): Rec | undefined {
    const rec = this.#items[this.#head];
    if (rec === undefined) return undefined;
    this.#items[this.#head++] = undefined;
    this.bytes -= rec.size;
    if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return rec;
  }

  /** Puts records back at the head (an exchange that never went out), oldest first. */
  restore(recs: readonly Rec[]): void {
    this.#items = [...recs, ...this.#items.slice(this.#head)];
    this.#head = 0;
    for (const rec of recs) this.bytes += rec.size;
  }

  /** Removes records a committed eviction took from the cache (journal mode mirrors it). */
  removeSeqs(seqs: ReadonlySet<number>): void {
    const kept = this.#items.slice(this.#head).filter((rec) => rec !== undefined && !seqs.has(rec.seq)) as Rec[];
    this.#items = kept;
    this.#head = 0;
    this.bytes = kept.reduce((sum, rec) => sum + rec.size, 0);
  }

  /** Removes and returns everything, oldest first. */
  drain(): Rec[] {
    const all = this.#items.slice(this.#head) as Rec[];
    this.#items = [];
    this.#head = 0;
    this.bytes = 0;
    return all;
  }
}
