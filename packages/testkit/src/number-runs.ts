/**
 * Reading numbers written as runs, so a gap, a repeat or a reordering stands out in a report.
 */

/** [1,2,3,7,8,5] → ["1-3","7-8","5"]: the order is kept. */
export function runs(ns: readonly number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < ns.length; ) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++;
    out.push(i === j ? `${ns[i]}` : `${ns[i]}-${ns[j]}`);
    i = j + 1;
  }
  return out;
}

/** 9,5,6,7 → "5-7,9": sorted, and capped at `maxRuns` runs so one bad run cannot flood a terminal. */
export function compact(ns: readonly number[], maxRuns = 20): string {
  const all = runs([...ns].sort((a, b) => a - b));
  return all.slice(0, maxRuns).join(',') + (all.length > maxRuns ? ',…' : '');
}
