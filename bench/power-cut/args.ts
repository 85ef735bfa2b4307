/**
 * Flags of `pnpm bench power-cut`. --quick is what CI runs: short, two kills, same chaos kinds.
 * --power-loss puts the cache on the testkit's power-loss layer: each kill also drops what was not synced.
 */
import { parseArgs } from 'node:util';

export interface PowerCutArgs {
  mode: 'spill' | 'journal';
  kills: number;
  rate: number;
  durationS: number;
  seed: number;
  timeoutMs: number;
  quick: boolean;
  json: boolean;
  svg: string | undefined;
  /** Write the timeline to bench/results/ (the pictures the READMEs show); otherwise it goes to a temp dir that is removed. */
  writeResults: boolean;
  /** Where to write the evidence file; by default only written (to the temp dir) when a promise broke. */
  trace: string | undefined;
  /** Each kill is a real power cut: the page cache goes too (the testkit's power-loss layer). */
  powerLoss: boolean;
  /** How often the device calls flush() (ms; 0: back to back); undefined: never. */
  flushMs: number | undefined;
  /** Extra environment for the device (--device-env KEY=VALUE, repeatable), e.g. LD_PRELOAD. */
  deviceEnv: Record<string, string>;
  /** Every flush the device makes is this many ms slower (the testkit's slow-fsync shim): an SD card. */
  fsyncMs: number | undefined;
}

export const USAGE =
  'usage: pnpm bench power-cut [--mode spill|journal] [--kills N] [--rate R] [--duration S] [--seed X] [--timeout-ms T] [--power-loss] [--flush-ms F] [--fsync-ms L] [--device-env KEY=VALUE ...] [--quick] [--json] [--write-results] [--svg path] [--trace path]';

export function parsePowerCutArgs(argv: readonly string[]): PowerCutArgs {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      mode: { type: 'string' },
      kills: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string' },
      'timeout-ms': { type: 'string' },
      svg: { type: 'string' },
      'write-results': { type: 'boolean' },
      trace: { type: 'string' },
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      'power-loss': { type: 'boolean' },
      'flush-ms': { type: 'string' },
      'fsync-ms': { type: 'string' },
      'device-env': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const mode = values.mode ?? 'journal';
  if (mode !== 'spill' && mode !== 'journal') throw new Error(`--mode must be spill or journal; got ${mode}\n${USAGE}`);
  const quick = values.quick === true;
  const number = (flag: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${flag} must be a number ≥ ${min}; got ${raw}\n${USAGE}`);
    return n;
  };
  const kills = Math.floor(number('kills', values.kills, quick ? 2 : 10, 0));
  const powerLoss = values['power-loss'] === true;
  const deviceEnv: Record<string, string> = {};
  for (const pair of values['device-env'] ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--device-env must be KEY=VALUE; got ${pair}\n${USAGE}`);
    deviceEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  // Journal mode always reports what flush() confirmed; with power loss both modes do (every 100 ms).
  const flushMs = values['flush-ms'] !== undefined ? Math.floor(number('flush-ms', values['flush-ms'], 0, 0)) : powerLoss ? 100 : mode === 'journal' ? 0 : undefined;
  return {
    mode,
    kills,
    rate: number('rate', values.rate, 100, 1),
    // Long enough for the kills at ~1.5 s apart, the network chaos, and calm at both ends.
    durationS: number('duration', values.duration, quick ? 20 : Math.max(60, kills * 4), 5),
    seed: Math.floor(number('seed', values.seed, 1, 0)),
    timeoutMs: Math.floor(number('timeout-ms', values['timeout-ms'], 1000, 10)),
    quick,
    json: values.json === true,
    svg: values.svg,
    writeResults: values['write-results'] === true,
    trace: values.trace,
    powerLoss,
    flushMs,
    deviceEnv,
    fsyncMs: values['fsync-ms'] !== undefined ? number('fsync-ms', values['fsync-ms'], 0, 0) : undefined,
  };
}
