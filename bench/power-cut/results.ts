/**
 * Turns the ground truth (what each device life accepted) and the auditor's arrivals into the bench's
 * numbers, and, when anything was lost, duplicated or reordered, into evidence: which reading numbers,
 * in which life, and how far from that life's kill.
 */
import { compact } from '@holdfast/testkit';
import type { ProcIo } from './proc-io.js';
import type { Life } from './fleet.js';

export interface LifeOutcome {
  life: number;
  end: Life['end'];
  accepted: number;
  firstN: number | undefined;
  lastN: number | undefined;
  lost: number[];
  /** Lost readings that flush() had already confirmed: a broken promise, never allowed. */
  lostConfirmed: number[];
  confirmedN: number;
  /** Readings this life accepted after the last flush() confirmation: all a cut may take from it (0 unless killed). */
  unconfirmedAtKill: number;
  /** Readings in memory or in flight at the last stats sample before the kill. */
  volatileAtKill: number;
  alarms: string[];
}

export interface Outcome {
  accepted: number;
  delivered: number;
  lost: number;
  /** Of those, readings flush() had confirmed; must be 0. */
  lostConfirmed: number;
  /** Lost readings accepted after the last confirmation of their life. */
  lostUnconfirmed: number;
  /** Summed over the kills, the readings accepted but not yet confirmed at the kill: what the kills may take. */
  unconfirmedAtKills: number;
  duplicates: number;
  outOfOrder: number;
  kills: number;
  /** Caches quarantined (moved aside as unreadable) by a device life on open. */
  quarantines: number;
  lives: LifeOutcome[];
  /** Reading numbers that arrived more than once, and how often. */
  duplicated: Array<{ n: number; times: number }>;
  /** Arrivals lower than one that came before them: [previous highest, n]. */
  reordered: Array<[number, number]>;
  /** Summed over lives; atOpen is the part written before each life's open() resolved. */
  io: { writeBytes: number; wchar: number; writeBytesAtOpen: number; complete: boolean };
}

const SHOWN = 20;

export function computeOutcome(lives: readonly Life[], arrivals: readonly number[]): Outcome {
  const seen = new Map<number, number>();
  const reordered: Array<[number, number]> = [];
  let highest = -Infinity;
  let outOfOrder = 0;
  for (const n of arrivals) {
    const times = (seen.get(n) ?? 0) + 1;
    seen.set(n, times);
    if (times > 1) continue;
    if (n < highest) {
      outOfOrder++;
      if (reordered.length < SHOWN) reordered.push([highest, n]);
    } else highest = n;
  }
  const duplicated = [...seen].filter(([, times]) => times > 1).map(([n, times]) => ({ n, times }));

  const outcomes = lives.map((life): LifeOutcome => ({
    life: life.index,
    end: life.end,
    accepted: life.accepted.length,
    firstN: life.accepted[0],
    lastN: life.accepted.at(-1),
    lost: life.accepted.filter((n) => !seen.has(n)),
    lostConfirmed: life.accepted.filter((n) => !seen.has(n) && n <= life.confirmedN),
    confirmedN: life.confirmedN,
    unconfirmedAtKill: life.end === 'kill' && life.accepted.length > 0 ? life.accepted.at(-1)! - Math.max(life.confirmedN, life.accepted[0]! - 1) : 0,
    volatileAtKill: life.volatileAtKill,
    alarms: life.alarms,
  }));
  const accepted = lives.reduce((sum, l) => sum + l.accepted.length, 0);
  const lost = outcomes.reduce((sum, l) => sum + l.lost.length, 0);
  const lostConfirmed = outcomes.reduce((sum, l) => sum + l.lostConfirmed.length, 0);
  return {
    accepted,
    delivered: accepted - lost,
    lost,
    lostConfirmed,
    lostUnconfirmed: lost - lostConfirmed,
    unconfirmedAtKills: outcomes.reduce((sum, l) => sum + l.unconfirmedAtKill, 0),
    duplicates: duplicated.reduce((sum, d) => sum + d.times - 1, 0),
    outOfOrder,
    kills: lives.filter((l) => l.end === 'kill').length,
    quarantines: lives.reduce((sum, l) => sum + l.alarms.filter((a) => a.startsWith('quarantine')).length, 0),
    lives: outcomes,
    duplicated: duplicated.slice(0, SHOWN),
    reordered,
    io: { ...sumIo(lives.map((l) => l.io)), writeBytesAtOpen: sumIo(lives.map((l) => l.ioAtOpen)).writeBytes },
  };
}

function sumIo(samples: ReadonlyArray<ProcIo | undefined>): { writeBytes: number; wchar: number; complete: boolean } {
  let writeBytes = 0;
  let wchar = 0;
  for (const io of samples) {
    writeBytes += io?.writeBytes ?? 0;
    wchar += io?.wchar ?? 0;
  }
  return { writeBytes, wchar, complete: samples.every((io) => io !== undefined) };
}

/** Lines for stderr that pin down every loss, duplicate and reordering to a life and a reading number. */
export function evidence(outcome: Outcome): string[] {
  const lines: string[] = [];
  for (const life of outcome.lives) for (const alarm of life.alarms) lines.push(`life ${life.life} ${alarm}`);
  for (const life of outcome.lives) {
    if (life.lost.length === 0) continue;
    const fromEnd = life.lastN === undefined ? [] : life.lost.map((n) => life.lastN! - n);
    lines.push(
      `life ${life.life} (${life.end}, n ${life.firstN}..${life.lastN}): lost ${life.lost.length} ` +
        `[${compact(life.lost)}], ${Math.min(...fromEnd)}..${Math.max(...fromEnd)} readings before its last accepted; ` +
        `${life.volatileAtKill} were in memory/in flight at the last sample` +
        (life.confirmedN > 0 ? `; flush() had confirmed up to n=${life.confirmedN} (${life.lostConfirmed.length} of the lost were confirmed)` : ''),
    );
  }
  for (const d of outcome.duplicated) lines.push(`duplicate: n=${d.n} arrived ${d.times} times (${owner(outcome, d.n)})`);
  for (const [before, n] of outcome.reordered) lines.push(`out of order: n=${n} arrived after n=${before} (${owner(outcome, n)})`);
  return lines;
}

function owner(outcome: Outcome, n: number): string {
  const life = outcome.lives.find((l) => l.firstN !== undefined && l.lastN !== undefined && n >= l.firstN && n <= l.lastN);
  return life === undefined ? 'no life accepted it' : `accepted by life ${life.life}, ${life.lastN! - n} before its last (${life.end})`;
}
