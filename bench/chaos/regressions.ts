/**
 * CI's short campaign: a seed that passes today, and every seed that ever failed, kept as a regression
 * case. `pnpm chaos --regressions` and test/chaos.test.ts run each. `expect` is 'pass', or
 * 'fails-until-F-fixes' for a failure of the library that issue F is fixing (the test marks those
 * todo); flip it to 'pass' once the fix lands.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseChaosArgs, type ChaosArgs } from '@holdfast/testkit';

export interface Regression {
  /** The arguments after `pnpm chaos`, exactly as the reproduction command printed them. */
  args: string;
  /** One line: what failed, as seen in the trace (or, for a seed that never failed, what it covers). */
  note: string;
  expect: 'pass' | 'fails-until-F-fixes';
}

export const regressionsFile = fileURLToPath(new URL('./regressions.json', import.meta.url));
export const deviceScript = fileURLToPath(new URL('./device.ts', import.meta.url));

export function loadRegressions(): Array<Regression & { parsed: ChaosArgs }> {
  const list = JSON.parse(readFileSync(regressionsFile, 'utf8')) as { seeds: Regression[] };
  return list.seeds.map((r) => {
    const parsed = parseChaosArgs(r.args.split(/\s+/).filter((a) => a !== ''));
    if (parsed === 'help' || parsed.seeds?.length !== 1) throw new Error(`${regressionsFile}: "${r.args}" must name exactly one --seed`);
    if (r.expect !== 'pass' && r.expect !== 'fails-until-F-fixes') throw new Error(`${regressionsFile}: expect must be pass or fails-until-F-fixes; got ${String(r.expect)}`);
    return { ...r, parsed };
  });
}
