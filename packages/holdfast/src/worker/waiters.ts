/**
 * Callers waiting on a condition (flush up to a seq, or fully drained), answered by request id.
 * Kept apart from the sender so its state machine stays readable.
 */
export class Waiters {
  readonly #flush: Array<{ id: number; upTo: number }> = [];
  readonly #drained: number[] = [];
  readonly #reply: (id: number) => void;

  constructor(reply: (id: number) => void) {
    this.#reply = reply;
  }

  addFlush(id: number, upTo: number): void {
    this.#flush.push({ id, upTo });
  }

  addDrained(id: number): void {
    this.#drained.push(id);
  }

  get hasFlush(): boolean {
    return this.#flush.length > 0;
  }

  get hasDrained(): boolean {
    return this.#drained.length > 0;
  }

  /** The highest seq any flush is waiting for. */
  get flushTarget(): number {
    let max = 0;
    for (const w of this.#flush) max = Math.max(max, w.upTo);
    return max;
  }

  /** Answers every flush whose seqs are all safe: below the lowest seq that is still volatile. */
  settleFlush(lowestVolatileSeq: number): void {
    for (let i = this.#flush.length - 1; i >= 0; i--) {
      const w = this.#flush[i]!;
      if (w.upTo < lowestVolatileSeq) {
        this.#flush.splice(i, 1);
        this.#reply(w.id);
      }
    }
  }

  settleDrained(): void {
    for (const id of this.#drained.splice(0)) this.#reply(id);
  }
}
