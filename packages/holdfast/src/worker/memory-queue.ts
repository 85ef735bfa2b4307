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

  /** Removes and returns everything, oldest first. */
  drain(): Rec[] {
    const all = this.#items.slice(this.#head) as Rec[];
    this.#items = [];
    this.#head = 0;
    this.bytes = 0;
    return all;
  }
}
