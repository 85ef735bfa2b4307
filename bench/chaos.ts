/**
 * chaos: seeded random fault campaigns against real Mosquitto, with invariant checks (the runner is
 * @holdfast/testkit's; the device is chaos/device.ts, on holdfast's public API). A failing seed prints
 * its reproduction command and a trace file.
 *
 *   pnpm chaos [--minutes M | --seed N | --seeds 1,2,5 | --regressions] [--duration S] [--rate R]
 *              [--timeout-ms T] [--faults kind,…] [--from S] [--json]
 *
 * Exit code 1 when any seed broke an invariant.
 */
import { CHAOS_USAGE, parseChaosArgs, passed, runCampaign, summarize, table, type CampaignResult, type ChaosArgs } from '@holdfast/testkit';
import { deviceScript, loadRegressions } from './chaos/regressions.js';

let args: ChaosArgs | 'help';
try {
  args = parseChaosArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
if (args === 'help') {
  console.log(CHAOS_USAGE);
  process.exit(0);
}
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const run = (a: ChaosArgs): Promise<CampaignResult> => runCampaign({ ...a, deviceScript, execArgv: ['--import', 'tsx'], log });

let result: CampaignResult;
if (args.regressions) {
  const parts: CampaignResult[] = [];
  for (const r of loadRegressions()) {
    log(`regression (${r.expect}): ${r.note}`);
    parts.push(await run(r.parsed));
  }
  result = {
    minutes: Math.round(parts.reduce((sum, p) => sum + p.minutes, 0) * 10) / 10,
    results: parts.flatMap((p) => p.results),
    errors: parts.flatMap((p) => p.errors),
    notes: [...new Set(parts.flatMap((p) => p.notes))],
  };
} else {
  result = await run(args);
}
if (args.json) process.stdout.write(`${JSON.stringify(summarize(result))}\n`);
else process.stdout.write(`${table(result)}\n`);
process.exitCode = passed(result) ? 0 : 1;
