/**
 * The chaos campaign's short run (issue F): every seed in bench/chaos/regressions.json, each a full
 * campaign seed against real Mosquitto with real device processes (journal and spill), judged by the
 * campaign's invariants. A seed that breaks one fails its test with the campaign's own failure lines
 * and reproduction command. A seed marked 'fails-until-F-fixes' is a failure of the library that issue
 * F is fixing: it still runs, as a todo, so its result shows without failing the suite; flip it to
 * 'pass' once the fix lands.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCampaign, type SeedResult } from '@holdfast/testkit';
import { deviceScript, loadRegressions } from '../bench/chaos/regressions.js';

describe('chaos campaign: regression seeds', () => {
  for (const r of loadRegressions()) {
    const todo = r.expect === 'fails-until-F-fixes' ? `known failure until issue F is fixed: ${r.failure}` : undefined;
    it(`pnpm chaos ${r.args}`, { todo }, async () => {
      const lines: string[] = [];
      const campaign = await runCampaign({ ...r.parsed, deviceScript, execArgv: ['--import', 'tsx'], log: (line) => lines.push(line) });
      const [result] = campaign.results as [SeedResult | undefined];
      assert.deepEqual(campaign.errors, [], `the run itself failed:\n${lines.join('\n')}`);
      assert.ok(result !== undefined);
      assert.deepEqual(result.failures, [], `seed ${result.seed} broke the campaign's invariants (trace: ${result.trace}):\n  ${result.failures.join('\n  ')}\nreproduce: ${result.repro}`);
    });
  }
});
