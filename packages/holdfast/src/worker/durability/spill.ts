import type { CacheWriter } from '../cache-writer.js';
import type { Rec } from '../record.js';
import type { DurabilityPolicy } from './policy.js';

/**
 * 'spill': flash is written only during trouble. While the link is healthy a reading lives in memory
 * until it is delivered; a crash loses what was in memory (the documented, bounded loss).
 */
export class SpillPolicy implements DurabilityPolicy {
  readonly mode = 'spill';
  readonly queuedAreCached = false;
  readonly persistsInDirect = false;
  readonly flushSpillsOffline = true;

  admit(): void {}

  canSend(): boolean {
    return true;
  }

  toSpill(inflight: readonly Rec[] | undefined, queued: Rec[]): Rec[] {
    return inflight ? [...inflight, ...queued] : queued;
  }

  lowestVolatile(writer: CacheWriter, inflightUncached: Rec | undefined, queueHead: Rec | undefined): number {
    return Math.min(writer.lowestVolatileSeq, inflightUncached?.seq ?? Infinity, queueHead?.seq ?? Infinity);
  }
}
