/**
 * When to restart a dead worker, after how long, when to give up, and which record to blame. Pure
 * bookkeeping, fed by the supervisor at each start and death.
 */

/** Restart tries in a row that fail (the worker dies during open, or again before any progress) before giving up. */
export const MAX_RESTART_TRIES = 5;
/** Crashes in a row while handling the same record before that record goes to the dead letters. */
export const POISON_CRASHES = 3;
/** A worker that lived this long made progress, even if it could neither deliver nor commit meanwhile. */
export const STABLE_MS = 30_000;
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 4000;

export interface Poison {
  seq: number;
  reason: string;
}

export class RestartPolicy {
  /** Deaths in a row without progress between them: the first is the crash, the rest failed restarts. */
  #failedInARow = 0;
  #readyAt: number | undefined;
  #deliveredAtReady = 0;
  #safeAtReady = 0;
  #crashSeq = 0;
  #crashesAtSeq = 0;

  /**
   * A worker is ready: remember where it started, to judge its progress when it dies. `delivered` and
   * `safeBelow` are the shared counters (Stat): progress is a delivery, or a reading made safe.
   */
  ready(delivered: number, safeBelow: number): void {
    this.#readyAt = performance.now();
    this.#deliveredAtReady = delivered;
    this.#safeAtReady = safeBelow;
  }

  /**
   * A worker died (during open too) while handling `workingSeq` (0: no record). Returns the record to
   * dead-letter, when it is the same one several times in a row.
   */
  died(delivered: number, safeBelow: number, workingSeq: number, cause: string): Poison | undefined {
    const readyAt = this.#readyAt;
    this.#readyAt = undefined;
    const progressed = readyAt !== undefined && (delivered > this.#deliveredAtReady || safeBelow > this.#safeAtReady || performance.now() - readyAt >= STABLE_MS);
    this.#failedInARow = progressed ? 1 : this.#failedInARow + 1;
    if (workingSeq === 0 || workingSeq !== this.#crashSeq) {
      this.#crashSeq = workingSeq;
      this.#crashesAtSeq = workingSeq === 0 ? 0 : 1;
      return undefined;
    }
    if (++this.#crashesAtSeq < POISON_CRASHES) return undefined;
    this.#crashSeq = 0;
    this.#crashesAtSeq = 0;
    return { seq: workingSeq, reason: `the holdfast worker crashed ${POISON_CRASHES} times in a row while handling this record (last: ${cause})` };
  }

  /** Whether to try again (false: give up, the client fails). */
  get shouldRetry(): boolean {
    return this.#failedInARow <= MAX_RESTART_TRIES;
  }

  /** The try number within this episode (1 for the first restart after a healthy run). */
  get attempt(): number {
    return this.#failedInARow;
  }

  /** Wait before the next try: none after a healthy run, then doubling. */
  get backoffMs(): number {
    return this.#failedInARow <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (this.#failedInARow - 2));
  }
}
