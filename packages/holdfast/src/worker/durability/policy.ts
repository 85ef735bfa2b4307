import type { CacheWriter } from '../cache-writer.js';
import type { Rec } from '../record.js';

/**
 * What the two durability modes do differently, in one place: the sender asks its policy instead of
 * branching on the mode.
 */
export interface DurabilityPolicy {
  readonly mode: 'spill' | 'journal';
  /** Input queued in memory while DIRECT: journal also writes it to the cache at once. */
  admit(recs: Rec[], writer: CacheWriter): void;
  /** Whether the oldest queued record may go on the wire now. */
  canSend(rec: Rec, writer: CacheWriter): boolean;
  /** Whether a record sent from memory is also in the cache, and so is removed from it once delivered. */
  readonly queuedAreCached: boolean;
  /** The records a spill must write: those that are only in memory. */
  toSpill(inflight: readonly Rec[] | undefined, queued: Rec[]): Rec[];
  /** Whether in-flight packets are committed to the cache even while DIRECT. */
  readonly persistsInDirect: boolean;
  /** Whether flush() with the link down writes the pending stream to the cache (rather than waiting). */
  readonly flushSpillsOffline: boolean;
  /** The lowest seq a crash could still lose (Infinity when none). */
  lowestVolatile(writer: CacheWriter, inflightUncached: Rec | undefined, queueHead: Rec | undefined): number;
}
