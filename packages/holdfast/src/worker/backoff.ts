/**
 * Exponential backoff with full jitter: attempt n waits a uniformly random time between minMs and
 * min(maxMs, minMs·2^n), so a fleet that lost its broker together does not return together. The floor
 * of minMs keeps a run of unlucky draws from becoming a tight reconnect loop.
 */
export class Backoff {
  #attempt = 0;
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;

  constructor(minMs: number, maxMs: number, random: () => number = Math.random) {
    this.#minMs = minMs;
    this.#maxMs = maxMs;
    this.#random = random;
  }

  next(): number {
    const cap = Math.min(this.#maxMs, this.#minMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(this.#minMs + this.#random() * (cap - this.#minMs));
  }

  reset(): void {
    this.#attempt = 0;
  }

  get attempt(): number {
    return this.#attempt;
  }
}
