import type { DurabilityPolicy } from './policy.js';

/**
 * 'spill': flash is written only during trouble. While the link is healthy a reading lives in memory
 * until it is delivered; a crash loses what was in memory (the documented, bounded loss).
 */
export class SpillPolicy implements DurabilityPolicy {
  readonly mode = 'spill';
  readonly progressInDirect = false;
  readonly flushSpillsOffline = true;

  lowestUnsafe(lowestVolatile: number): number {
    return lowestVolatile;
  }

  hurry(): void {}
}
