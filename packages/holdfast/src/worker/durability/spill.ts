import type { DurabilityPolicy } from './policy.js';

/**
 * 'spill': flash is written only during trouble. While the link is healthy a reading lives in memory
 * until it is delivered; a crash loses what was in memory (the documented, bounded loss).
 */
export class SpillPolicy implements DurabilityPolicy {
  readonly mode = 'spill';
  readonly progressInDirect: boolean;
  readonly flushSpillsOffline = true;
  readonly spillsWhenFallingBehind = true;

  /**
   * `replaying`: this run replays what a journal run left in its intake log. Those readings are sent
   * from memory, and the log is deleted only up to a second after they are delivered: a crash in
   * between would send them again, unless their PUBRECs are recorded as journal mode records them.
   */
  constructor(replaying: boolean) {
    this.progressInDirect = replaying;
  }

  lowestUnsafe(lowestVolatile: number): number {
    return lowestVolatile;
  }

  hurry(): void {}
}
