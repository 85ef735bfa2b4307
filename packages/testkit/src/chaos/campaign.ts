/**
 * A campaign: seeds one after another (a list, or as many as fit in the minutes given), each judged
 * on its own, and the totals. Fault kinds this machine cannot inject are left out, and said so once.
 */
import { reproCommand, type ChaosArgs } from './args.js';
import { findLibfaketime } from './clock.js';
import { runSeed, type SeedResult } from './run-seed.js';
import type { FaultKind } from './schedule.js';

export interface CampaignOptions extends Omit<ChaosArgs, 'json' | 'regressions'> {
  deviceScript: string;
  /** Node flags for the device script, e.g. ['--import', 'tsx']. */
  execArgv: string[];
  /** Each device's tmpfs, in MiB. @default 64 */
  diskMb?: number;
  /** A device life above this RSS fails the seed. @default 400 */
  rssBoundMb?: number;
  /** In-memory queue limit given to the devices. @default 10000 (the library's default) */
  highWater?: number;
  log: (line: string) => void;
}

export interface CampaignResult {
  minutes: number;
  results: SeedResult[];
  /** Seeds whose run threw (a harness failure, not a verdict), with the error. */
  errors: Array<{ seed: number; error: string; repro: string }>;
  /** What this machine or client could not do, said once. */
  notes: string[];
}

/** What the seed run is expected to take beyond its fault window: start-up, calm, drain, audit. */
const OVERHEAD_MS = 20_000;

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const started = performance.now();
  const notes: string[] = [];
  const note = (line: string): void => {
    notes.push(line);
    o.log(line);
  };
  const kinds = new Set<FaultKind>(o.kinds);
  if (kinds.has('disk-full') && process.getuid?.() !== 0) {
    kinds.delete('disk-full');
    note('not root: the devices run on the ordinary disk and disk-full is not scheduled');
  }
  const libfaketime = kinds.has('clock-jump') ? findLibfaketime() : undefined;
  if (kinds.has('clock-jump') && libfaketime === undefined) {
    kinds.delete('clock-jump');
    note('libfaketime is not installed (apt-get install faketime): clock-jump is not scheduled');
  }

  const results: SeedResult[] = [];
  const errors: CampaignResult['errors'] = [];
  const budgetMs = o.minutes * 60_000;
  let hookNoted = false;
  for (let i = 0; ; i++) {
    const seed = o.seeds !== undefined ? o.seeds[i] : o.from + i;
    if (seed === undefined) break;
    if (o.seeds === undefined && i > 0) {
      const last = results.at(-1)?.elapsedMs ?? o.durationMs + OVERHEAD_MS;
      if (performance.now() - started + last > budgetMs) break;
    }
    const repro = reproCommand(seed, o);
    try {
      const result = await runSeed({
        seed,
        durationMs: o.durationMs,
        rate: o.rate,
        timeoutMs: o.timeoutMs,
        highWater: o.highWater ?? 10_000,
        kinds,
        focus: o.focus,
        deviceScript: o.deviceScript,
        execArgv: o.execArgv,
        libfaketime,
        diskMb: o.diskMb ?? 64,
        rssBoundMb: o.rssBoundMb ?? 400,
        repro,
        log: o.log,
      });
      if (!result.hooks && kinds.has('worker-crash') && !hookNoted) {
        hookNoted = true;
        note('the client has no worker fault hook (Symbol.for("holdfast.test.injectWorkerFault") with HOLDFAST_TEST_HOOKS=1): worker-crash is not scheduled');
      }
      results.push(result);
      for (const line of result.verdicts.flatMap((v) => v.notes)) o.log(`seed ${seed}: note: ${line}`);
      o.log(result.failures.length === 0 ? `seed ${seed}: ok (${result.faults} faults, ${Math.round(result.elapsedMs / 1000)} s)` : `seed ${seed}: FAILED\n${result.failures.map((f) => `  ${f}`).join('\n')}\n  trace: ${result.trace}\n  reproduce: ${repro}`);
    } catch (err) {
      const error = (err as Error).stack ?? String(err);
      errors.push({ seed, error, repro });
      o.log(`seed ${seed}: the run itself failed: ${error}\n  reproduce: ${repro}`);
    }
  }
  return { minutes: Math.round((performance.now() - started) / 6000) / 10, results, errors, notes };
}
