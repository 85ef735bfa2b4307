import { Stat, STATES } from '../protocol.js';
import { monotonicMs } from './clock.js';
import type { Cache } from './cache.js';
import type { Exchange } from './exchange.js';
import type { SenderState } from './states.js';

/**
 * The sender's counters in the shared Float64Array the facade reads without a round trip (stats(),
 * /health, /metrics). One writer, named operations, so the sender's logic is not buried in slot maths.
 */
export class SenderStats {
  readonly #s: Float64Array;

  constructor(stats: Float64Array) {
    this.#s = stats;
    this.#s[Stat.cacheWritable] = 1;
  }

  get connected(): boolean {
    return this.#s[Stat.connected] === 1;
  }

  received(count: number): void {
    this.#s[Stat.received]! += count;
  }

  spilled(count: number): void {
    this.#s[Stat.spilled]! += count;
  }

  delivered(exchange: Exchange): void {
    this.#s[Stat.delivered]! += exchange.seqs.length;
    if (exchange.lastSeq > 0) this.#s[Stat.lastDeliveredSeq] = exchange.lastSeq;
  }

  deadLettered(count: number): void {
    this.#s[Stat.deadLettered]! += count;
  }

  /** Messages in flight, and when their exchange was sent (monotonic, for the offline watch; 0: none). */
  inflight(count: number): void {
    this.#s[Stat.inflight] = count;
    this.#s[Stat.exchangeStartedMs] = count > 0 ? monotonicMs() : 0;
  }

  state(state: SenderState): void {
    this.#s[Stat.state] = STATES.indexOf(state);
  }

  memory(messages: number, bytes: number): void {
    this.#s[Stat.memoryQueued] = messages;
    this.#s[Stat.memoryBytes] = bytes;
  }

  /** The cache's totals; the oldest age counts only what is after the delivered floor. */
  cache(cache: Cache, afterSeq: number): void {
    const c = cache.counters;
    this.#s[Stat.cachedMessages] = c.messages;
    this.#s[Stat.cachedBytes] = c.bytes;
    for (let p = 0; p < 10; p++) this.#s[Stat.byPriority + p] = c.byPriority[p] ?? 0;
    this.#s[Stat.oldestCachedTs] = c.messages > 0 ? cache.records.oldestTimestamp(afterSeq) : 0;
  }
}
