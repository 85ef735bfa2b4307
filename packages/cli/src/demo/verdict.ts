/**
 * What the auditor saw against what the device accepted. PASS needs lost, duplicates and outOfOrder
 * all 0. `delivered` counts the distinct readings that reached the auditor; it can exceed `accepted`
 * by `unconfirmed`: readings publish() took at a power cut, in the instant before the device could say
 * so (journal mode had them on disk, so they arrive too). It is never short of it without a loss.
 */
export interface Verdict {
  accepted: number;
  delivered: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  unconfirmed: number;
}

/**
 * The verdict from the device's confirmed readings, the auditor's counts (duplicates, order, what is
 * missing) and the readings that arrived at the subscriber, which alone decide `delivered`.
 */
export function verdictOf(accepted: readonly number[], arrivals: readonly number[], audit: { lost: number; duplicates: number; outOfOrder: number }): Verdict {
  const arrived = new Set(arrivals);
  const confirmed = new Set(accepted);
  return {
    accepted: confirmed.size,
    delivered: arrived.size,
    lost: audit.lost,
    duplicates: audit.duplicates,
    outOfOrder: audit.outOfOrder,
    unconfirmed: [...arrived].filter((n) => !confirmed.has(n)).length,
  };
}

export function passed(v: Verdict): boolean {
  return v.lost === 0 && v.duplicates === 0 && v.outOfOrder === 0;
}

export function verdictLine(v: Verdict): string {
  const extra = v.unconfirmed > 0 ? ` (${v.unconfirmed} taken by publish() as the power was cut, before the device could confirm ${v.unconfirmed === 1 ? 'it' : 'them'})` : '';
  return `${passed(v) ? 'PASS' : 'FAIL'}: accepted ${v.accepted}, delivered ${v.delivered}${extra}, lost ${v.lost}, duplicates ${v.duplicates}, reordered ${v.outOfOrder}`;
}
