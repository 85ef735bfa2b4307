import type { Rec } from './record.js';

/**
 * FIFO of records with O(1) push/shift and running byte totals; compacts lazily. Each record keeps
 * when it arrived (monotonic ms), so the sender can tell how long the oldest one has waited.
 */
export class MemoryQueue {
  #items: Array<Rec | undefined> = [];
  /** performance.now() when each item arrived, in step with #items. */
  #arrived: number[] = [];
  #head = 0;
  bytes = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(rec: Rec, arrivedAt: number): void {
    this.#items.push(rec);
    this.#arrived.push(arrivedAt);
    this.bytes += rec.size;
  }

  peek(): Rec | undefined {
    return this.#items[this.#head];
  }

  /** When the oldest record arrived (undefined when empty). */
  get oldestArrivedAt(): number | undefined {
    return this.length > 0 ? this.#arrived[this.#head] : undefined;
  }

  shift(): Rec | undefined {
    const rec = this.#items[this.#head];
    if (rec === undefined) return undefined;
    this.#items[this.#head++] = undefined;
    this.bytes -= rec.size;
    if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#arrived = this.#arrived.slice(this.#head);
      this.#head = 0;
    }
    return rec;
  }

  /** Puts records back at the head (an exchange that never went out), oldest first, as arrived at `arrivedAt`. */
  restore(recs: readonly Rec[], arrivedAt: number): void {
    this.#items = [...recs, ...this.#items.slice(this.#head)];
    this.#arrived = [...recs.map(() => arrivedAt), ...this.#arrived.slice(this.#head)];
    this.#head = 0;
    for (const rec of recs) this.bytes += rec.size;
  }

  /** Removes and returns everything, oldest first. */
  drain(): Rec[] {
    const all = this.#items.slice(this.#head) as Rec[];
    this.#items = [];
    this.#arrived = [];
    this.#head = 0;
    this.bytes = 0;
    return all;
  }
}
