/**
 * What a worker's death costs: the readings only in its memory, and its live values in shared memory.
 *
 * Every seq posted to a worker from Stat.safeBelow on was only in its memory; a client that fails also
 * loses what waited for a worker. Journal mode loses neither: publish() accepts only what the intake
 * log took, and the next worker (or the next open()) replays it (see RestartInit).
 */
import { ErrorCodes, HoldfastError } from './errors.js';
import type { Outbox } from './outbox.js';
import { OFFLINE_CAUSES, Stat } from './protocol.js';
import { describeLost, SeqRanges, type LostReadings, type SeqRange } from './seq-ranges.js';
import { monotonicMs } from './worker/clock.js';

/** How many of the lost seq ranges stats() keeps: the newest. The count stays exact. */
const KEPT_LOSS_RANGES = 64;

export class WorkerLosses {
  readonly #outbox: Outbox;
  readonly #stats: Float64Array;
  readonly #journal: boolean;
  #count = 0;
  readonly #ranges = new SeqRanges();

  /** `journal`: an intake log holds every accepted reading, so none is lost with a worker. */
  constructor(outbox: Outbox, stats: Float64Array, journal: boolean) {
    this.#outbox = outbox;
    this.#stats = stats;
    this.#journal = journal;
  }

  /** Readings lost with dead workers since open(). */
  get count(): number {
    return this.#count;
  }

  /** Their seqs, as ranges (the newest KEPT_LOSS_RANGES of them). */
  get ranges(): SeqRange[] {
    return this.#ranges.ranges.map(([a, b]) => [a, b]);
  }

  /** What the worker would take with it if it died now: seqs posted to it from Stat.safeBelow on. */
  unsaved(): LostReadings {
    return this.#lost(this.#outbox.posted, this.#stats[Stat.safeBelow]!);
  }

  /** The readings waiting for a worker. */
  waiting(): LostReadings {
    return this.#lost(this.#outbox.waitingSeqs(), 0);
  }

  /** The worker died: counts what it took with it. */
  died(): LostReadings {
    return this.#record(this.unsaved());
  }

  /** The client failed: drops what waited for a worker and counts it. */
  dropWaiting(): LostReadings {
    return this.#record(this.#lost(this.#outbox.discardWaiting(), 0));
  }

  #record(lost: LostReadings): LostReadings {
    this.#count += lost.count;
    // Seqs only grow, so each loss lies above every earlier one.
    for (const [first, last] of lost.ranges) this.#ranges.add(first, last);
    this.#ranges.keepNewest(KEPT_LOSS_RANGES);
    return lost;
  }

  #lost(seqs: SeqRanges, from: number): LostReadings {
    return this.#journal ? { count: 0, ranges: [] } : seqs.from(from);
  }
}

/** The dead worker's live values (its connection, what it had in flight and in memory) died with it. */
export function clearLiveSlots(s: Float64Array): void {
  for (const slot of [Stat.connected, Stat.inflight, Stat.exchangeStartedMs, Stat.memoryQueued, Stat.memoryBytes, Stat.workingSeq]) s[slot] = 0;
  // Offline from now, unless it already was (the replacement carries the outage on: offline-watch.ts).
  if (s[Stat.offline] !== 1) {
    s[Stat.offlineSinceMs] = monotonicMs();
    s[Stat.offline] = 1;
  }
  s[Stat.offlineCause] = OFFLINE_CAUSES.indexOf('disconnected');
}

/** Where a replacement starts: after every seq posted so far. Counters (delivered, spilled, ...) carry on. */
export function startAfter(s: Float64Array, lastPosted: number): void {
  s[Stat.workingSeq] = 0;
  s[Stat.receivedThrough] = lastPosted;
  s[Stat.safeBelow] = lastPosted + 1;
}

export function crashedError(cause: string, lost: LostReadings): HoldfastError {
  return new HoldfastError(ErrorCodes.WORKER_CRASHED, `the holdfast worker died (${cause}); restarting it on the same cache. Lost: ${describeLost(lost)}`, {
    details: { cause, lost },
  });
}

/** For the flush() calls that cover lost readings: they must not resolve as if those were safe. */
export function flushLostError(lost: LostReadings): HoldfastError {
  return new HoldfastError(ErrorCodes.WORKER_CRASHED, `flush(): the worker died with ${describeLost(lost)} only in its memory`, { details: { lost } });
}

export function failedError(cause: string, attempts: number, lost: LostReadings): HoldfastError {
  return new HoldfastError(ErrorCodes.WORKER_FAILED, `the holdfast worker could not be restarted (${attempts} tries in a row failed; last: ${cause}). Lost: ${describeLost(lost)}`, {
    details: { cause, attempts, lost },
  });
}
