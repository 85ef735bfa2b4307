/**
 * The chaos campaign's short run (issue F): every seed in bench/chaos/regressions.json (a seed that
 * passes today and every seed that ever failed), each a full campaign seed against real Mosquitto with
 * real device processes (journal and spill), judged by the campaign's invariants. A seed that breaks one fails its test with the campaign's own failure lines
 * and reproduction command. A seed marked 'fails-until-F-fixes' is a failure of the library that issue
 * F is fixing: it still runs, as a todo, so its result shows without failing the suite; flip it to
 * 'pass' once the fix lands.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FAULT_KINDS, parseChaosArgs, reproCommand, runCampaign, type ChaosArgs, type SeedResult } from '@holdfast/testkit';
import { deviceScript, loadRegressions } from '../bench/chaos/regressions.js';

describe('chaos campaign: regression seeds', () => {
  for (const r of loadRegressions()) {
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
});

describe('chaos command line', () => {
  it('a reproduction command parses back to the same seed and settings', () => {
    const cases = [
      ['--seed', '3'],
      ['--seed', '3', '--duration', '12.5', '--rate', '80', '--timeout-ms', '400'],
      ['--seed', '3', '--faults', 'kill,drop-ack'],
      ['--seed', '3', '--without', 'drop-ack,disconnect-topic'],
      ['--seed', '3', '--focus', 'disk-full,kill', '--faults', 'kill'],
    ];
    for (const argv of cases) {
      const args = parseChaosArgs(argv) as ChaosArgs;
      const again = parseChaosArgs(reproCommand(3, args).split(' ').slice(2)) as ChaosArgs;
      for (const key of ['seeds', 'durationMs', 'rate', 'timeoutMs', 'kinds', 'focus'] as const) assert.deepEqual(again[key], args[key], `${argv.join(' ')}: ${key}`);
    }
  });

  it('names what is wrong with a bad flag', () => {
    assert.throws(() => parseChaosArgs(['--faults', 'nope']), new RegExp(`unknown kind nope \\(known: ${FAULT_KINDS.join(', ')}\\)`));
    assert.throws(() => parseChaosArgs(['--seed', '1', '--minutes', '3']), /choose one of --seed, --seeds, --minutes and --regressions/);
    assert.throws(() => parseChaosArgs(['--rate', '0']), /--rate must be a number ≥ 1; got 0/);
    assert.throws(() => parseChaosArgs(['--without', FAULT_KINDS.join(',')]), /no fault kind left/);
    assert.deepEqual((parseChaosArgs(['--seeds', '4..6']) as ChaosArgs).seeds, [4, 5, 6]);
  });
});
