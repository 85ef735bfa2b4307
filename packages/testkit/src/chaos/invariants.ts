/**
 * Judges one device after a seed, from two independent sources: what the device printed as accepted
 * (the ground truth) and what the auditor, a separate subscriber on the broker, received. The client's
 * own reports excuse a missing reading only when they name it (dead letters, worker restarts by seq), or
 * by count for evictions, whose event names no seqs.
 *
 * Invariants:
 * - journal mode (persistent session): 0 lost, 0 duplicates, 0 reordered;
 * - spill mode: 0 duplicates, 0 reordered; readings lost only at a SIGKILL, at most
 *   lossBoundPerKill() per kill, or named by a worker-restart event. A reading still
 *   in the cache of a wedged device is stuck, not lost at a kill: it counts as lost, beyond the bound;
 * - a reading sent to a topic the broker refuses or disconnects on is never delivered, and is in the
 *   client's dead letters (spill mode may lose it at a kill, like any reading); no other reading is;
 * - liveness: the device drained within its bound once the faults stopped (else it is wedged);
 * - no crash: no life died by itself, none quarantined its cache; no crash loop; RSS under its bound.
 */
import { compact } from '../number-runs.js';
import type { Accepted, Leftover, Life } from './devices.js';

export interface JudgeInput {
  mode: 'journal' | 'spill';
  lives: readonly Life[];
  /** Reading numbers as the auditor received them, in order. */
  arrivals: readonly number[];
  rate: number;
  timeoutMs: number;
  highWater: number;
  rssBoundMb: number;
  /** From the moment faults stopped to drained(), or undefined if it never drained. */
  drainedInMs: number | undefined;
  livenessBoundMs: number;
  /** What the cache still held after a wedge; undefined when the device drained (its cache is empty). */
  leftover: Leftover | undefined;
}

export interface Verdict {
  mode: 'journal' | 'spill';
  accepted: number;
  delivered: number;
  /** Accepted readings never delivered and not excused as dead letters or reported evictions. */
  lost: number;
  /** Spill: lost beyond the per-kill bound, or not at a kill and not named by a worker restart. */
  lostBeyondBound: number;
  deadLettered: number;
  evicted: number;
  duplicates: number;
  reordered: number;
  kills: number;
  wedged: boolean;
  crashes: number;
  crashLoop: boolean;
  maxRssMb: number;
  /** One line per broken invariant; empty when the device kept every promise. */
  failures: string[];
  /** What was allowed but worth knowing (a kill while the disk was full). */
  notes: string[];
}

/** Three lives in a row that die by themselves: what systemd's start limit would call a crash loop. */
const CRASH_LOOP = 3;
const SHOWN = 12;

/**
 * What a SIGKILL may take in spill mode (README): min(highWater.messages, rate × timeoutMs) plus the one
 * in flight, plus, as the power-cut bench counts it, the publishing tick still on its way to the worker.
 */
export function lossBoundPerKill(rate: number, timeoutMs: number, highWater: number): number {
  return Math.min(highWater, Math.ceil((rate * timeoutMs) / 1000)) + 1 + Math.ceil(rate / 100);
}

export function judge(input: JudgeInput): Verdict {
  const { lives, mode } = input;
  const seen = new Map<number, number>();
  let highest = -Infinity;
  let reordered = 0;
  const reorderedShown: string[] = [];
  for (const n of input.arrivals) {
    const times = (seen.get(n) ?? 0) + 1;
    seen.set(n, times);
    if (times > 1) continue;
    if (n < highest) {
      reordered++;
      if (reorderedShown.length < SHOWN) reorderedShown.push(`${n} after ${highest}`);
    } else highest = n;
  }
  const duplicated = [...seen].filter(([, times]) => times > 1);
  const duplicates = duplicated.reduce((sum, [, times]) => sum + times - 1, 0);

  const deadLetters = new Set<number>();
  for (const life of lives) for (const seq of life.deadLetters) deadLetters.add(seq);
  const restartSeqs = reportedSeqRanges(lives.flatMap((l) => l.workerRestarts));
  const namedByRestart = (a: Accepted): boolean => restartSeqs.some(([from, to]) => a.seq >= from && a.seq <= to);

  const failures: string[] = [];
  const evicted = lives.reduce((sum, l) => sum + l.evicted, 0);
  let accepted = 0;
  let delivered = 0;
  let deadLettered = 0;
  const missing: Array<{ a: Accepted; life: Life }> = [];
  const leaked: number[] = [];
  const wronglyDead: number[] = [];
  for (const life of lives) {
    for (const a of life.accepted) {
      accepted++;
      const arrived = seen.has(a.n);
      if (a.poison !== undefined) {
        if (arrived) leaked.push(a.n);
        else if (deadLetters.has(a.seq)) deadLettered++;
        else missing.push({ a, life });
        continue;
      }
      if (arrived) delivered++;
      else {
        if (deadLetters.has(a.seq)) wronglyDead.push(a.n);
        missing.push({ a, life });
      }
    }
  }
  if (leaked.length > 0) failures.push(`${mode}: ${leaked.length} poison readings reached subscribers: n ${compact(leaked)}`);
  if (wronglyDead.length > 0) failures.push(`${mode}: ${wronglyDead.length} readings on an allowed topic were dead-lettered: n ${compact(wronglyDead)}`);

  // A wedged device's cache still holds some: stuck, not gone (a liveness failure, not a loss at a kill).
  const stuck = missing.filter((m) => input.leftover?.cached.has(m.a.seq) === true);
  const gone = missing.filter((m) => input.leftover?.cached.has(m.a.seq) !== true);
  if (stuck.length > 0) failures.push(`${mode}: ${stuck.length} accepted readings still in the cache when the device wedged: ${describeMissing(stuck, lives)}`);
  // The evict event names a count, not seqs: that many gone readings are excused, no more.
  const lost = missing.length - Math.min(evicted, gone.length);
  const notes: string[] = [];
  let lostBeyondBound = 0;
  if (mode === 'journal') {
    if (gone.length > evicted) failures.push(`journal: ${gone.length - evicted} accepted readings are gone (neither delivered nor in the cache${evicted > 0 ? `, beyond ${evicted} reported evicted` : ''}): ${describeMissing(gone, lives)}`);
  } else {
    const judged = judgeSpillLosses(gone.filter((m) => !namedByRestart(m.a)), lives, lossBoundPerKill(input.rate, input.timeoutMs, input.highWater));
    // Stuck in a wedged cache is not a loss at a kill: beyond the bound too.
    lostBeyondBound = judged.beyond + stuck.length;
    failures.push(...judged.failures);
    notes.push(...judged.notes);
  }
  if (duplicates > 0) failures.push(`${mode}: ${duplicates} duplicates: n ${compact(duplicated.map(([n]) => n))}`);
  notes.push(...judgeStrangers(mode, lives, seen, failures));
  if (reordered > 0) failures.push(`${mode}: ${reordered} out of order: ${reorderedShown.join(', ')}`);

  const wedged = input.drainedInMs === undefined;
  if (wedged) {
    const stats = lives.at(-1)?.stats;
    failures.push(
      `${mode}: wedged: not drained ${Math.round(input.livenessBoundMs / 1000)} s after the faults stopped` +
        (stats === undefined ? '' : ` (last stats: memory ${stats[2]}, in flight ${stats[3]}, cached ${stats[4]}, connected ${stats[1]})`),
    );
  }
  const crashed = lives.filter((l) => l.end === 'crash' || l.end === 'open-failed');
  for (const life of crashed) failures.push(`${mode}: life ${life.index} died by itself (${life.exit?.signal ?? `code ${life.exit?.code}`})${life.errors.length > 0 ? `: ${life.errors.at(-1)}` : ''}`);
  let run = 0;
  let crashLoop = false;
  for (const life of lives) {
    run = life.end === 'crash' || life.end === 'open-failed' ? run + 1 : 0;
    if (run >= CRASH_LOOP) crashLoop = true;
  }
  if (crashLoop) failures.push(`${mode}: crash loop: ${CRASH_LOOP} lives in a row died by themselves`);
  const injected = lives.reduce((sum, l) => sum + l.injected, 0);
  const restarts = lives.reduce((sum, l) => sum + l.workerRestarts.length, 0);
  if (restarts > injected) failures.push(`${mode}: the worker restarted ${restarts} times, ${injected} injected`);
  const quarantines = lives.reduce((sum, l) => sum + l.quarantines, 0);
  if (quarantines > 0) failures.push(`${mode}: the cache was quarantined ${quarantines} times`);
  const maxRssMb = Math.max(0, ...lives.map((l) => l.maxRssMb));
  if (maxRssMb > input.rssBoundMb) failures.push(`${mode}: RSS reached ${maxRssMb} MB, bound ${input.rssBoundMb} MB`);

  return {
    mode, accepted, delivered, lost, lostBeyondBound, deadLettered, evicted, duplicates, reordered,
    kills: lives.filter((l) => l.end === 'kill').length, wedged, crashes: crashed.length, crashLoop, maxRssMb, failures, notes,
  };
}

type Missing = { a: Accepted; life: Life };

/**
 * Arrivals no life printed as accepted. The reading a life was handing to publish() when it was killed
 * may have been accepted unseen (journal mode replays it from the intake log): a note when it arrives.
 * Anything else is a reading nobody published: a failure.
 */
function judgeStrangers(mode: 'journal' | 'spill', lives: readonly Life[], seen: ReadonlyMap<number, number>, failures: string[]): string[] {
  const accepted = new Set(lives.flatMap((l) => l.accepted.map((a) => a.n)));
  const unconfirmed = new Map<number, Life>();
  for (const life of lives) if (life.unconfirmed !== undefined) unconfirmed.set(life.unconfirmed, life);
  const notes: string[] = [];
  const strangers: number[] = [];
  for (const n of seen.keys()) {
    if (accepted.has(n)) continue;
    const life = unconfirmed.get(n);
    if (life) notes.push(`${mode}: n ${n} arrived: life ${life.index} ended (${life.end}) inside publish(), before it could print the reading as accepted`);
    else strangers.push(n);
  }
  if (strangers.length > 0) failures.push(`${mode}: ${strangers.length} readings arrived that no life published: n ${compact(strangers)}`);
  return notes;
}

/**
 * Spill mode's losses, per life. A killed life may lose up to the bound; but when the kill found its
 * cache refusing writes (a full disk), the readings waiting in memory for space are gone too, and the
 * bound does not hold: that is reported as a note. A life that was not killed may lose nothing. An
 * eviction in life j may have taken readings of any life up to j (the event names no seqs), so its
 * count excuses what is left beyond those limits, latest lives first.
 */
function judgeSpillLosses(gone: readonly Missing[], lives: readonly Life[], bound: number): { beyond: number; failures: string[]; notes: string[] } {
  const excess = lives.map((life) => {
    const mine = gone.filter((m) => m.life === life).length;
    if (life.end !== 'kill') return mine;
    return cacheRefusingWrites(life) ? 0 : Math.max(0, mine - bound);
  });
  for (let j = lives.length - 1; j >= 0; j--) {
    let budget = lives[j]!.evicted;
    for (let i = j; i >= 0 && budget > 0; i--) {
      const used = Math.min(budget, excess[i]!);
      excess[i]! -= used;
      budget -= used;
    }
  }
  const failures: string[] = [];
  const notes: string[] = [];
  lives.forEach((life, i) => {
    const mine = gone.filter((m) => m.life === life);
    if (mine.length === 0) return;
    const ns = compact(mine.map((m) => m.a.n));
    if (life.end === 'kill' && cacheRefusingWrites(life)) notes.push(`spill: life ${life.index} was killed while its cache refused writes (disk full) and lost ${mine.length} readings waiting in memory (bound ${bound} when the disk has room): n ${ns}`);
    else if (excess[i]! === 0) return;
    else if (life.end === 'kill') failures.push(`spill: the kill of life ${life.index} lost ${mine.length} readings, bound ${bound}${life.evicted > 0 ? ' (after counting evictions)' : ''}: n ${ns}`);
    else failures.push(`spill: life ${life.index} (${life.end}) lost ${excess[i]} readings without a kill, an eviction or a worker restart naming them: n ${ns}`);
  });
  return { beyond: excess.reduce((sum, e) => sum + e, 0), failures, notes };
}

/** Whether the life's last word on its cache was a refused write (no recovery after it). */
function cacheRefusingWrites(life: Life): boolean {
  let refusing = false;
  for (const e of life.log) {
    if (e.ev === 'error' && String(e.data).startsWith('HOLDFAST_CACHE_WRITE_FAILED')) refusing = true;
    else if (e.ev === 'cache-recovered') refusing = false;
  }
  return refusing;
}

/**
 * Seq ranges a worker-restart event names as lost. The event's exact shape belongs to the library, so
 * every {from, to} (or {first, last}) pair found in its data counts, and so do a bare `seqs` array and
 * `ranges: [[first, last], …]` (holdfast's `lost`).
 */
export function reportedSeqRanges(events: readonly unknown[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const item of v) visit(item);
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    const o = v as Record<string, unknown>;
    const from = o.from ?? o.first;
    const to = o.to ?? o.last;
    if (typeof from === 'number' && typeof to === 'number') out.push([from, to]);
    if (Array.isArray(o.seqs)) for (const s of o.seqs) if (typeof s === 'number') out.push([s, s]);
    if (Array.isArray(o.ranges)) for (const r of o.ranges) if (Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number') out.push([r[0], r[1]]);
    for (const value of Object.values(o)) if (typeof value === 'object') visit(value);
  };
  visit(events);
  return out;
}

/** Which lives the missing readings belong to, and how each life ended. */
function describeMissing(missing: ReadonlyArray<{ a: Accepted; life: Life }>, lives: readonly Life[]): string {
  const parts: string[] = [];
  for (const life of lives) {
    const mine = missing.filter((m) => m.life === life).map((m) => m.a.n);
    if (mine.length > 0) parts.push(`life ${life.index} (${life.end}) ${mine.length}: n ${compact(mine)}`);
  }
  return parts.join('; ');
}
