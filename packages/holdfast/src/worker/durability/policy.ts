/**
 * What the two durability modes do differently, in one place: the sender asks its policy instead of
 * branching on the mode. Both keep the readings they are sending in memory while the link is healthy,
 * and both write the cache only during trouble; journal mode adds what makes a crash or power cut lose
 * nothing it confirmed.
 */
export interface DurabilityPolicy {
  readonly mode: 'spill' | 'journal';
  /**
   * Whether an exchange sent from memory records its PUBREC durably too (journal: after a power cut
   * its reading is replayed from the intake log, and must not be sent again once the broker has it).
   */
  readonly progressInDirect: boolean;
  /** Whether flush() with the link down writes the pending stream to the cache (rather than waiting). */
  readonly flushSpillsOffline: boolean;
  /**
   * Whether memory may hold a reading no longer than timeoutMs before the pending stream spills (spill:
   * it bounds what a crash loses; journal's intake log already holds every reading).
   */
  readonly spillsWhenFallingBehind: boolean;
  /**
   * The lowest seq not yet safe from a power cut, given the lowest seq only in memory or on its way
   * into the cache: what flush() waits for.
   */
  lowestUnsafe(lowestVolatile: number): number;
  /** The flush() waiter for `upTo` needs this: journal mode syncs its intake log at once. */
  hurry(upTo: number): void;
}
