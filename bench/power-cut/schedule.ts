/**
 * The chaos schedule, drawn from a seed so a run can be repeated exactly. Two independent tracks:
 * network trouble (link resets, stalls, outages, one broker restart) runs one event at a time, and
 * power cuts (SIGKILLs of the device) fall at random moments, so some land in the middle of trouble.
 */
export { seededRandom } from '@holdfast/testkit';

export type NetworkKind = 'reset' | 'stall' | 'outage' | 'broker-restart';

export interface NetworkEvent {
  atMs: number;
  kind: NetworkKind;
  /** How long the fault lasts (0 for a reset; the restart's own time for broker-restart). */
  durationMs: number;
}

export interface KillEvent {
  atMs: number;
  /** Time the power stays off before the device starts again. */
  offMs: number;
  /** The life being cut runs at least this long after its open(), even if that pushes the cut back. */
  aliveMs: number;
}

export interface ChaosPlan {
  durationMs: number;
  network: NetworkEvent[];
  kills: KillEvent[];
}

// Chaos stays inside this window so the run starts calm and leaves time to settle before the drain.
const START = 0.08;
const END = 0.88;
// A restarted device needs about a second to load; kills closer than this would only hit start-up.
const MIN_KILL_GAP_MS = 1500;

export function planChaos(durationMs: number, kills: number, random: () => number): ChaosPlan {
  const between = (lo: number, hi: number): number => Math.round(lo + random() * (hi - lo));
  const seconds = durationMs / 1000;

  const kinds: NetworkKind[] = ['broker-restart'];
  for (let i = 0; i < Math.max(2, Math.round(seconds / 12)); i++) kinds.push('reset');
  for (let i = 0; i < Math.max(2, Math.round(seconds / 15)); i++) kinds.push('stall');
  for (let i = 0; i < Math.max(1, Math.round(seconds / 25)); i++) kinds.push('outage');
  shuffle(kinds, random);

  // One slot per event, the event somewhere inside its slot: spread out, never overlapping.
  const windowStart = durationMs * START;
  const slot = (durationMs * (END - START)) / kinds.length;
  const network = kinds.map((kind, i): NetworkEvent => {
    // Stalls both shorter and longer than the device's 1 s timeout: some recover, some spill.
    const durationMs = kind === 'stall' ? between(400, 3000) : kind === 'outage' ? between(1500, 4000) : 0;
    const room = Math.max(0, slot - durationMs - 500);
    return { atMs: Math.round(windowStart + i * slot + random() * room), kind, durationMs };
  });

  // Sorted uniform points, then pushed apart by the minimum gap: uniform over the feasible placements.
  const killWindow = durationMs * (0.9 - START) - MIN_KILL_GAP_MS * Math.max(0, kills - 1);
  if (killWindow < 0) throw new Error(`--kills ${kills} do not fit in ${seconds} s; use a longer --duration`);
  const points = Array.from({ length: kills }, () => random() * killWindow).sort((a, b) => a - b);
  const killEvents = points.map((p, i): KillEvent => ({ atMs: Math.round(durationMs * START + p + i * MIN_KILL_GAP_MS), offMs: between(100, 1000), aliveMs: between(200, 1500) }));

  return { durationMs, network, kills: killEvents };
}

function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
