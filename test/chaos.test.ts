/**
 * The chaos campaign (issue F) in CI: the regression seeds from bench/chaos/regressions.json with a short
 * fault window (chaos-full.test.ts runs those with the full one), the invariants' judge on made-up lives,
 * and the command line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CHAOS_DEFAULTS, FAULT_KINDS, judge, parseChaosArgs, reproCommand, type ChaosArgs, type JudgeInput, type Life } from '@holdfast/testkit';
import { regressionSeeds } from './chaos-seeds.js';

const benchDir = fileURLToPath(new URL('../bench/', import.meta.url));

// Seeds with the full 30 s fault window run in chaos-full.test.ts, so neither file nears the runner's timeout.
describe('chaos campaign: regression seeds with a short fault window', () => regressionSeeds((r) => r.parsed.durationMs < CHAOS_DEFAULTS.durationS * 1000));

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

  it('pnpm chaos --json prints one summary line in the documented shape, and exits 0 when every invariant held', async () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'chaos.ts', '--seed', '5', '--duration', '5', '--json'], { cwd: benchDir, encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `exit code; stderr tail:\n${run.stderr.split('\n').slice(-15).join('\n')}`);
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines.length, 1, `one line on stdout: ${run.stdout}`);
    const summary = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(summary), ['chaos', 'minutes', 'seeds', 'faults', 'journal', 'spill', 'wedged', 'crashLoops']);
    assert.equal(summary.chaos, true);
    assert.deepEqual(summary.seeds, [5]);
    assert.deepEqual(Object.keys(summary.journal as object), ['accepted', 'lost', 'duplicates', 'reordered']);
    assert.deepEqual(Object.keys(summary.spill as object), ['accepted', 'lost', 'lostBeyondBound', 'duplicates', 'reordered']);
    const journal = summary.journal as Record<string, number>;
    assert.ok(journal.accepted! > 0, 'the journal device accepted readings');
    assert.deepEqual([journal.lost, journal.duplicates, journal.reordered, summary.wedged, summary.crashLoops], [0, 0, 0, 0, 0]);
  });

  it('names what is wrong with a bad flag', () => {
    assert.throws(() => parseChaosArgs(['--faults', 'nope']), new RegExp(`unknown kind nope \\(known: ${FAULT_KINDS.join(', ')}\\)`));
    assert.throws(() => parseChaosArgs(['--seed', '1', '--minutes', '3']), /choose one of --seed, --seeds, --minutes and --regressions/);
    assert.throws(() => parseChaosArgs(['--rate', '0']), /--rate must be a number ≥ 1; got 0/);
    assert.throws(() => parseChaosArgs(['--without', FAULT_KINDS.join(',')]), /no fault kind left/);
    assert.deepEqual((parseChaosArgs(['--seeds', '4..6']) as ChaosArgs).seeds, [4, 5, 6]);
  });
});

describe('chaos invariants', () => {
  const life = (index: number, ns: number[], end: Life['end'], unconfirmed?: number): Life => ({
    index, pid: 0, accepted: ns.map((n) => ({ n, seq: index * 2 ** 32 + n })), unconfirmed, end, hooks: true, deadLetters: new Set(), workerRestarts: [],
    injected: 0, evicted: 0, quarantines: 0, errors: [], maxRssMb: 50, stats: undefined, statsLog: [], log: [],
  });
  const input = (lives: Life[], arrivals: number[]): JudgeInput => ({
    mode: 'journal', lives, arrivals, rate: 50, timeoutMs: 1000, highWater: 10_000, rssBoundMb: 200, drainedInMs: 1000, livenessBoundMs: 9000, leftover: undefined,
  });

  // Seed 207451's "duplicate": life 3 was killed inside publish() of n 543, which the intake log then
  // held; the next life published n 543 again. Both readings arrived once each. The device now prints
  // {"try":n} first, so the next life starts after it, and the replayed one arrives as a note.
  it('a reading accepted unseen before a kill arrives as a note, not a duplicate; the next life does not reuse its number', () => {
    const verdict = judge(input([life(3, [541, 542], 'kill', 543), life(4, [544, 545], 'drained')], [541, 542, 543, 544, 545]));
    assert.deepEqual(verdict.failures, []);
    assert.equal(verdict.duplicates, 0);
    assert.match(verdict.notes.join('\n'), /n 543 arrived: life 3 ended \(kill\) inside publish\(\)/);
  });

  it('a reading no life published is a failure', () => {
    const verdict = judge(input([life(0, [1, 2], 'drained')], [1, 2, 7]));
    assert.deepEqual(verdict.failures, ['journal: 1 readings arrived that no life published: n 7']);
  });

  it('the same reading arriving twice is a duplicate', () => {
    const verdict = judge(input([life(0, [1, 2], 'drained')], [1, 2, 2]));
    assert.deepEqual(verdict.failures, ['journal: 1 duplicates: n 2']);
  });
});
