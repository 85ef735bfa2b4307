/**
 * The campaign's command line, and the one-line command that reproduces a seed.
 */
import { parseArgs } from 'node:util';
import { FAULT_KINDS, type FaultKind } from './schedule.js';

export interface ChaosArgs {
  /** Seeds to run, in order; undefined: consecutive seeds from `from` until `minutes` are used. */
  seeds: number[] | undefined;
  minutes: number;
  from: number;
  durationMs: number;
  rate: number;
  timeoutMs: number;
  kinds: Set<FaultKind>;
  /** Draw the schedule from these kinds only (denser); undefined: from all. */
  focus: Set<FaultKind> | undefined;
  json: boolean;
  /** Run the committed regression seeds (bench/chaos/regressions.json) instead. */
  regressions: boolean;
}

export const CHAOS_DEFAULTS = { minutes: 5, durationS: 30, rate: 50, timeoutMs: 1000 } as const;

export const CHAOS_USAGE = [
  'usage: pnpm chaos [--minutes M | --seed N | --seeds 1,2,5 | --seeds 10..20 | --regressions]',
  '                  [--from S] [--duration S] [--rate R] [--timeout-ms T] [--faults kind,…] [--without kind,…] [--focus kind,…] [--json]',
  `fault kinds: ${FAULT_KINDS.join(', ')} (default: all)`,
].join('\n');

export function parseChaosArgs(argv: readonly string[]): ChaosArgs | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      minutes: { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      from: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      'timeout-ms': { type: 'string' },
      faults: { type: 'string' },
      without: { type: 'string' },
      focus: { type: 'string' },
      json: { type: 'boolean' },
      regressions: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  const number = (flag: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min) throw new Error(`--${flag} must be a number ≥ ${min}; got ${raw}\n${CHAOS_USAGE}`);
    return n;
  };
  const seed = (raw: string): number => {
    if (!/^\d+$/.test(raw.trim())) throw new Error(`a seed is a non-negative integer; got ${raw}\n${CHAOS_USAGE}`);
    return Number(raw);
  };
  const chosen = [values.seed, values.seeds, values.minutes, values.regressions].filter((v) => v !== undefined).length;
  if (chosen > 1) throw new Error(`choose one of --seed, --seeds, --minutes and --regressions\n${CHAOS_USAGE}`);
  let seeds: number[] | undefined;
  if (values.seed !== undefined) seeds = [seed(values.seed)];
  else if (values.seeds !== undefined) {
    const range = /^(\d+)\.\.(\d+)$/.exec(values.seeds.trim());
    seeds = range !== null ? Array.from({ length: Math.max(0, Number(range[2]) - Number(range[1]) + 1) }, (_, i) => Number(range[1]) + i) : values.seeds.split(',').map(seed);
    if (seeds.length === 0) throw new Error(`--seeds names no seed\n${CHAOS_USAGE}`);
  }
  return {
    seeds,
    minutes: number('minutes', values.minutes, CHAOS_DEFAULTS.minutes, 0.1),
    from: values.from === undefined ? Math.floor(Math.random() * 1_000_000) : seed(values.from),
    durationMs: Math.round(number('duration', values.duration, CHAOS_DEFAULTS.durationS, 5) * 1000),
    rate: number('rate', values.rate, CHAOS_DEFAULTS.rate, 1),
    timeoutMs: Math.round(number('timeout-ms', values['timeout-ms'], CHAOS_DEFAULTS.timeoutMs, 50)),
    kinds: parseKinds(values.faults, values.without),
    focus: values.focus === undefined ? undefined : new Set(kindList('focus', values.focus)),
    json: values.json === true,
    regressions: values.regressions === true,
  };
}

function parseKinds(faults: string | undefined, without: string | undefined): Set<FaultKind> {
  const kinds = faults === undefined || faults === 'all' ? new Set<FaultKind>(FAULT_KINDS) : new Set(kindList('faults', faults));
  for (const kind of without === undefined ? [] : kindList('without', without)) kinds.delete(kind);
  if (kinds.size === 0) throw new Error(`no fault kind left to schedule\n${CHAOS_USAGE}`);
  return kinds;
}

function kindList(flag: string, raw: string): FaultKind[] {
  return raw.split(',').map((s) => {
    const name = s.trim();
    if (!(FAULT_KINDS as readonly string[]).includes(name)) throw new Error(`--${flag}: unknown kind ${name} (known: ${FAULT_KINDS.join(', ')})`);
    return name as FaultKind;
  });
}

/** The one-line command that replays `seed` with these settings (defaults left out). */
export function reproCommand(seed: number, a: Pick<ChaosArgs, 'durationMs' | 'rate' | 'timeoutMs' | 'kinds' | 'focus'>): string {
  const parts = ['pnpm chaos', `--seed ${seed}`];
  if (a.durationMs !== CHAOS_DEFAULTS.durationS * 1000) parts.push(`--duration ${a.durationMs / 1000}`);
  if (a.rate !== CHAOS_DEFAULTS.rate) parts.push(`--rate ${a.rate}`);
  if (a.timeoutMs !== CHAOS_DEFAULTS.timeoutMs) parts.push(`--timeout-ms ${a.timeoutMs}`);
  if (a.focus !== undefined) parts.push(`--focus ${FAULT_KINDS.filter((k) => a.focus!.has(k)).join(',')}`);
  if (a.kinds.size < FAULT_KINDS.length) {
    const kept = FAULT_KINDS.filter((k) => a.kinds.has(k));
    const left = FAULT_KINDS.filter((k) => !a.kinds.has(k));
    parts.push(kept.length <= left.length ? `--faults ${kept.join(',')}` : `--without ${left.join(',')}`);
  }
  return parts.join(' ');
}
