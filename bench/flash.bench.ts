/**
 * flash: what holdfast costs an SD card. Device processes run under the testkit's slow-fsync shim,
 * which makes every durable write take an injected latency longer (0, 3 and 8 ms: a VM disk, a good
 * A1 card, a cheap card) and counts them. For journal and spill on a healthy link, and the drain after
 * an outage (one at a time and bulk): flushes and bytes written per reading, the readings/s each
 * sustains, and the time to catch up after an outage at 100 readings/s. The baseline, measured in the
 * same run under the same shim, is plain lmdb-js with one synced commit per reading.
 *
 *   pnpm bench flash [--json] [--quick] [--rate 100] [--count N] [--window-s S] [--outage-s S]
 *
 * A full run also measures issue G's slow-link target: `pnpm bench catch-up --fsync-ms 8` (a 60,000
 * backlog over a 100 ms RTT link, bulk on, with the one-at-a-time rate over the same link as its
 * baseline), reported as `slowLinkCatchUp`.
 *
 * --quick (CI): 8 ms only, short phases and a 2 s outage instead of 20 s, no slow-link catch-up (CI
 * runs `catch-up --quick` on its own).
 * --json prints one line: {"bench":"flash","results":[…],"baseline":[…],"slowLinkCatchUp":…,…}.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { slowFsyncShim, startBroker } from '@holdfast/testkit';
import { baselineCases, drainCase, healthyCase, type FlashResult, type FlashSettings } from './flash/cases.js';
import { printFlashTable } from './flash/report.js';
import { describeMachine, note, parseBenchArgs } from './lib/common.js';

const args = parseBenchArgs(['rate', 'count', 'window-s', 'outage-s']);
const shim = slowFsyncShim();
if (!shim.ok) {
  note(`flash: cannot build the slow-fsync shim: ${shim.reason}`);
  process.exit(1);
}

// Quick mode (CI) keeps the SD-card-class latency only: every code path of the bench, a third of the time.
const latencies = args.quick ? [8] : [0, 3, 8];
const broker = await startBroker({ log: note });
const settings: FlashSettings = {
  rate: args.numbers.rate ?? 100,
  count: args.numbers.count ?? (args.quick ? 50 : 1000),
  windowS: args.numbers['window-s'] ?? (args.quick ? 1 : 5),
  outstanding: 200,
  drainOutageS: args.quick ? 0.5 : 5,
  outageS: args.numbers['outage-s'] ?? (args.quick ? 2 : 20),
  giveUpS: args.quick ? 2 : 10,
  capS: args.quick ? 15 : 120,
  broker: broker.url,
  brokerPort: broker.port,
  log: note,
};

/** The catch-up bench's summary for a 60,000 backlog over 100 ms RTT with every flush 8 ms slower. */
function slowLinkCatchUp(): Record<string, unknown> {
  note('8 ms slow-link catch-up: pnpm bench catch-up --fsync-ms 8 --rtt-ms 100 --backlog 60000');
  const script = fileURLToPath(new URL('catch-up.bench.ts', import.meta.url));
  const run = spawnSync(process.execPath, [...process.execArgv, script, '--json', '--fsync-ms', '8', '--rtt-ms', '100', '--backlog', '60000'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  if (run.status !== 0 || !line.startsWith('{')) throw new Error(`catch-up --fsync-ms 8 failed (exit ${run.status}): ${run.stdout}`);
  return JSON.parse(line) as Record<string, unknown>;
}

const results: FlashResult[] = [];
const baseline: FlashResult[] = [];
try {
  for (const fsyncMs of latencies) {
    const measure = async (label: string, run: () => Promise<FlashResult>, into: FlashResult[]): Promise<void> => {
      const t0 = performance.now();
      const r = await run();
      into.push(r);
      note(`${fsyncMs} ms ${label}: ${r.fsyncsPerReading} fsyncs, ${r.bytesPerReading} B per reading, ${r.readingsPerSecond}/s, catch-up ${r.catchUpSeconds ?? '-'} s (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    };
    await measure('journal', () => healthyCase(settings, 'journal', fsyncMs), results);
    await measure('spill', () => healthyCase(settings, 'spill', fsyncMs), results);
    await measure('drain', () => drainCase(settings, false, fsyncMs), results);
    await measure('drain-bulk', () => drainCase(settings, true, fsyncMs), results);
    const t0 = performance.now();
    baseline.push(...(await baselineCases(settings, fsyncMs)));
    for (const r of baseline.slice(-2)) note(`${fsyncMs} ms baseline ${r.case}: ${r.fsyncsPerReading} fsyncs, ${r.bytesPerReading} B per reading, ${r.readingsPerSecond}/s, catch-up ${r.catchUpSeconds ?? '-'} s`);
    note(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const slowLink = args.quick ? null : slowLinkCatchUp();
  const machine = describeMachine(broker.kind);
  if (args.json) {
    const { broker: _url, brokerPort: _port, log: _log, ...method } = settings;
    process.stdout.write(`${JSON.stringify({ bench: 'flash', results, baseline, slowLinkCatchUp: slowLink, quick: args.quick, ...method, machine })}\n`);
  } else {
    printFlashTable(results, baseline, { ...settings, quick: args.quick }, machine);
    if (slowLink !== null) {
      console.log(
        `slow-link catch-up at 8 ms per flush: ${String(slowLink.backlog)} cached + 10 new/s over ${String(slowLink.rttMs)} ms RTT, bulk on: caught up in ${String(slowLink.drainSeconds)} s (target ≤ 30 s); ` +
          `baseline, one at a time over the same link: ${String(slowLink.oneAtATimePerSecond)} msg/s`,
      );
    }
  }
} finally {
  await broker.close();
}
