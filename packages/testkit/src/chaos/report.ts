/**
 * A campaign's totals: the one JSON summary line (`--json`) and a readable table.
 */
import type { CampaignResult } from './campaign.js';
import type { Verdict } from './invariants.js';

export interface ChaosSummary {
  chaos: true;
  minutes: number;
  seeds: number[];
  faults: number;
  journal: { accepted: number; lost: number; duplicates: number; reordered: number };
  spill: { accepted: number; lost: number; lostBeyondBound: number; duplicates: number; reordered: number };
  wedged: number;
  crashLoops: number;
}

export function summarize(c: CampaignResult): ChaosSummary {
  const verdicts = c.results.flatMap((r) => r.verdicts);
  const sum = (mode: Verdict['mode'], key: 'accepted' | 'lost' | 'lostBeyondBound' | 'duplicates' | 'reordered'): number =>
    verdicts.filter((v) => v.mode === mode).reduce((total, v) => total + v[key], 0);
  return {
    chaos: true,
    minutes: c.minutes,
    seeds: [...c.results.map((r) => r.seed), ...c.errors.map((e) => e.seed)],
    faults: c.results.reduce((total, r) => total + r.faults, 0),
    journal: { accepted: sum('journal', 'accepted'), lost: sum('journal', 'lost'), duplicates: sum('journal', 'duplicates'), reordered: sum('journal', 'reordered') },
    spill: {
      accepted: sum('spill', 'accepted'),
      lost: sum('spill', 'lost'),
      lostBeyondBound: sum('spill', 'lostBeyondBound'),
      duplicates: sum('spill', 'duplicates'),
      reordered: sum('spill', 'reordered'),
    },
    wedged: verdicts.filter((v) => v.wedged).length,
    crashLoops: verdicts.filter((v) => v.crashLoop).length,
  };
}

/** Whether every seed kept every promise (and none failed to run). */
export function passed(c: CampaignResult): boolean {
  return c.errors.length === 0 && c.results.every((r) => r.failures.length === 0);
}

export function table(c: CampaignResult): string {
  const s = summarize(c);
  const kinds = new Map<string, number>();
  for (const r of c.results) for (const [kind, n] of Object.entries(r.applied)) kinds.set(kind, (kinds.get(kind) ?? 0) + n);
  const failed = c.results.filter((r) => r.failures.length > 0);
  const lines = [
    `chaos campaign: ${s.seeds.length} seeds in ${s.minutes} min, ${s.faults} faults (${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')})`,
    '',
    '| mode    | accepted | lost | lost beyond bound | duplicates | reordered |',
    '|---------|---------:|-----:|------------------:|-----------:|----------:|',
    `| journal | ${s.journal.accepted} | ${s.journal.lost} | – | ${s.journal.duplicates} | ${s.journal.reordered} |`,
    `| spill   | ${s.spill.accepted} | ${s.spill.lost} | ${s.spill.lostBeyondBound} | ${s.spill.duplicates} | ${s.spill.reordered} |`,
    '',
    `wedged ${s.wedged}, crash loops ${s.crashLoops}; ${failed.length + c.errors.length} of ${s.seeds.length} seeds failed`,
  ];
  for (const r of failed) lines.push(`  seed ${r.seed}: ${r.failures[0]}${r.failures.length > 1 ? ` (+${r.failures.length - 1} more)` : ''}\n    ${r.repro}`);
  for (const e of c.errors) lines.push(`  seed ${e.seed}: the run failed: ${e.error.split('\n')[0]}\n    ${e.repro}`);
  return lines.join('\n');
}
