import type { IntakeSync } from '../intake-sync.js';
import type { DurabilityPolicy } from './policy.js';

/**
 * 'journal': publish() writes every reading to the intake log before it returns (a crash of the
 * process cannot take it), the worker syncs the log in batches (a power cut takes at most one batch,
 * and none that flush() confirmed), and every exchange records its PUBREC durably, so a reading the
 * log replays after a cut is never delivered twice.
 */
export class JournalPolicy implements DurabilityPolicy {
  readonly mode = 'journal';
  readonly progressInDirect = true;
  readonly flushSpillsOffline = false;
  readonly spillsWhenFallingBehind = false;
  readonly #intake: IntakeSync;

  constructor(intake: IntakeSync) {
    this.#intake = intake;
  }

  /** Safe: synced in the intake log, or delivered or committed to the cache. */
  lowestUnsafe(lowestVolatile: number): number {
    return Math.max(lowestVolatile, this.#intake.syncedThrough + 1);
  }

  hurry(upTo: number): void {
    if (this.#intake.syncedThrough < upTo) this.#intake.hurry();
  }
}
