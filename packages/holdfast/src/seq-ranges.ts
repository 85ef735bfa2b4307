/** Inclusive seq ranges, [first, last], ascending and disjoint. */
export type SeqRange = [number, number];

/** What a crash or a stuck close() could not save: how many readings, and which seqs. */
export interface LostReadings {
  count: number;
  ranges: SeqRange[];
}

/**
 * A set of seqs kept as ranges. Seqs are handed out consecutively, so what the facade posted to a
 * worker is nearly always one range that grows at its end.
 */
export class SeqRanges {
  #ranges: SeqRange[] = [];

  /** Adds first..last (first above every seq already held, as seqs only grow). */
  add(first: number, last = first): void {
    const tail = this.#ranges.at(-1);
    if (tail && first <= tail[1] + 1) tail[1] = Math.max(tail[1], last);
    else this.#ranges.push([first, last]);
  }

  /** Forgets every seq below `seq`. */
  dropBelow(seq: number): void {
    while (this.#ranges.length > 0 && this.#ranges[0]![1] < seq) this.#ranges.shift();
    const head = this.#ranges[0];
    if (head && head[0] < seq) head[0] = seq;
  }

  /** Keeps only the newest `count` ranges. */
  keepNewest(count: number): void {
    if (this.#ranges.length > count) this.#ranges.splice(0, this.#ranges.length - count);
  }

  clear(): void {
    this.#ranges = [];
  }

  get ranges(): readonly SeqRange[] {
    return this.#ranges;
  }

  /** The seqs held here from `seq` on. */
  from(seq: number): LostReadings {
    const ranges: SeqRange[] = [];
    for (const [a, b] of this.#ranges) if (b >= seq) ranges.push([Math.max(a, seq), b]);
    return { count: ranges.reduce((n, [a, b]) => n + b - a + 1, 0), ranges };
  }
}

/** "3 readings (seqs 4294967301-4294967303)" for error messages. */
export function describeLost(lost: LostReadings): string {
  if (lost.count === 0) return 'no readings';
  const shown = lost.ranges.slice(0, 5).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
  if (lost.ranges.length > 5) shown.push(`and ${lost.ranges.length - 5} more ranges`);
  return `${lost.count} reading${lost.count === 1 ? '' : 's'} (seqs ${shown.join(', ')})`;
}
