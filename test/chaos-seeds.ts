/**
 * Runs regression seeds from bench/chaos/regressions.json (issue F), one test each: a full campaign seed
 * against real Mosquitto with real device processes (journal and spill), judged by the campaign's
 * invariants. A seed that breaks one fails its test with the campaign's own failure lines and
 * reproduction command. A seed marked 'fails-until-F-fixes' still runs, as a todo.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runCampaign, type SeedResult } from '@holdfast/testkit';
import { deviceScript, loadRegressions } from '../bench/chaos/regressions.js';

type Regression = ReturnType<typeof loadRegressions>[number];

export function regressionSeeds(which: (r: Regression) => boolean): void {
  for (const r of loadRegressions().filter(which)) {
    const todo = r.expect === 'fails-until-F-fixes' ? `known failure until issue F is fixed: ${r.note}` : undefined;
    it(`pnpm chaos ${r.args}`, { todo }, async () => {
      const lines: string[] = [];
      const campaign = await runCampaign({ ...r.parsed, deviceScript, execArgv: ['--import', 'tsx'], log: (line) => lines.push(line) });
      const [result] = campaign.results as [SeedResult | undefined];
      assert.deepEqual(campaign.errors, [], `the run itself failed:\n${lines.join('\n')}`);
      assert.ok(result !== undefined);
      assert.deepEqual(result.failures, [], `seed ${result.seed} broke the campaign's invariants (trace: ${result.trace}):\n  ${result.failures.join('\n  ')}\nreproduce: ${result.repro}`);
    });
  }
}
