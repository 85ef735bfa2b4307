/**
 * The evidence file of a failing seed, as JSON lines in the temp dir: the reproduction command, the
 * campaign's log (every fault, when it really happened), each device life (how it ended, what it
 * accepted, every client event it printed), the auditor's arrivals and the broker's log. Enough to
 * tell a library failure from a harness one without running the seed again.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChaosDevice } from './devices.js';
import type { Verdict } from './invariants.js';
import { runs } from '../number-runs.js';

export interface TraceInput {
  seed: number;
  repro: string;
  /** performance.now() when the faults began: times in the trace are seconds since then. */
  t0: number;
  lines: readonly string[];
  devices: readonly ChaosDevice[];
  verdicts: readonly Verdict[];
  arrivals: ReadonlyArray<readonly number[]>;
  brokerLog: string;
}

/** The broker log's tail; all of it with HOLDFAST_MOSQUITTO_DEBUG=1, whose packet lines are the point. */
const BROKER_LOG_LINES = process.env.HOLDFAST_MOSQUITTO_DEBUG === '1' ? Infinity : 400;

/** Writes the trace and returns its path. */
export function writeTrace(input: TraceInput): string {
  const out: unknown[] = [{ seed: input.seed, repro: input.repro, verdicts: input.verdicts }, { log: input.lines }];
  input.devices.forEach((device, i) => {
    for (const life of device.lives) {
      const { accepted, deadLetters, log, statsLog, ...rest } = life;
      const at = (t: number): number => Math.round(t - input.t0) / 1000;
      out.push({
        device: device.spec.clientId,
        life: {
          ...rest,
          deadLetters: [...deadLetters],
          log: log.map((e) => ({ ...e, at: at(e.at as number) })),
          statsLog: statsLog.map(([t, ...s]) => [at(t!), ...s]),
        },
        acceptedRuns: runs(accepted.map((a) => a.n)),
        poison: accepted.filter((a) => a.poison !== undefined),
        seqs: accepted.length > 0 ? [accepted[0]!.seq, accepted.at(-1)!.seq] : [],
      });
    }
    out.push({ device: device.spec.clientId, arrivalRuns: runs(input.arrivals[i] ?? []), stderr: device.stderr().split('\n').slice(-40) });
  });
  out.push({ brokerLog: input.brokerLog.trimEnd().split('\n').slice(-BROKER_LOG_LINES) });
  const path = join(tmpdir(), `holdfast-chaos-seed${input.seed}-${Date.now()}.jsonl`);
  writeFileSync(path, `${out.map((l) => JSON.stringify(l)).join('\n')}\n`);
  return path;
}
