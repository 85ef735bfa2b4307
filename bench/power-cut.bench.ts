/**
 * power-cut: a real Mosquitto (persistent), an auditor subscribed to it directly, and a device process
 * publishing through a faulty link at a fixed rate. A seeded chaos schedule resets and stalls the link,
 * restarts the broker and SIGKILLs the device (a power cut), restarting it on the same cache. At the end
 * the last life drains, and the auditor's arrivals are checked against every reading the device lives
 * accepted: lost, duplicates, out of order, and disk bytes written per accepted reading (flash wear).
 *
 *   pnpm bench power-cut [--mode spill|journal] [--kills N] [--rate R] [--duration S] [--seed X]
 *                        [--timeout-ms T] [--quick] [--json] [--svg path] [--trace path]
 *
 * Exit code 1 when the mode breaks its promise: journal loses any reading publish() accepted (the intake log
 * holds it from before publish() returns);
 * spill loses more at one kill than its bound; either duplicates or reorders; a life finds its cache
 * unreadable and quarantines it. Also when the library was rebuilt during the run. A broken run writes a trace (JSON lines) with the evidence.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractReadingNumber, lossBoundPerKill, startAuditor, startBroker, startLinkProxy } from '@holdfast/testkit';
import { parsePowerCutArgs } from './power-cut/args.js';
import { runChaos } from './power-cut/chaos.js';
import { Fleet } from './power-cut/fleet.js';
import { describeMachine, printTable, summary } from './power-cut/report.js';
import { computeOutcome, evidence } from './power-cut/results.js';
import { planChaos, seededRandom } from './power-cut/schedule.js';
import { renderTimeline } from './power-cut/svg.js';
import { Timeline } from './power-cut/timeline.js';
import { libraryStamp } from './power-cut/library-stamp.js';
import { writeTrace } from './power-cut/trace.js';

let args: ReturnType<typeof parsePowerCutArgs>;
try {
  args = parsePowerCutArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
const note = (line: string): void => void process.stderr.write(`${line}\n`);
const here = dirname(fileURLToPath(import.meta.url));
// The committed pictures come from full runs; a --quick run (CI) must not overwrite them.
const svgPath = args.svg ?? (args.quick ? join(tmpdir(), `holdfast-power-cut-${args.mode}-quick.svg`) : join(here, 'results', `power-cut-${args.mode}.svg`));
const clientId = `power-cut-${args.mode}`;
const DRAIN_TIMEOUT_MS = 120_000;
const AUDIT_SETTLE_MS = 10_000;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? 0;
}

const stampBefore = libraryStamp();
const plan = planChaos(args.durationS * 1000, args.kills, seededRandom(args.seed));
const broker = await startBroker({ persistence: true, requireMosquitto: true, log: note });
const link = await startLinkProxy({ targetPort: broker.port });
const auditor = await startAuditor({ url: broker.url, topics: `sensors/${clientId}`, protocolVersion: 5, extract: extractReadingNumber });
const cacheDir = mkdtempSync(join(tmpdir(), 'holdfast-bench-power-cut-'));
const timeline = new Timeline();
const fleet = new Fleet(
  { broker: link.url, clientId, cacheDir, durability: args.mode, trackDurable: args.mode === 'journal', rate: args.rate, timeoutMs: args.timeoutMs },
  timeline,
);
let failed = false;
try {
  note(`power-cut: ${args.mode} mode, ${args.durationS} s at ${args.rate}/s, ${args.kills} kills, seed ${args.seed}`);
  await fleet.start();
  await runChaos(plan, { broker, link, fleet, timeline, log: note });
  note(`${(timeline.at() / 1000).toFixed(1)}s draining the last life`);
  await fleet.drain(DRAIN_TIMEOUT_MS);
  const expected = fleet.allAccepted();
  await auditor.waitFor({ [clientId]: expected }, args.mode === 'journal' ? AUDIT_SETTLE_MS : 3000);

  const outcome = computeOutcome(fleet.lives, auditor.arrivals(clientId));
  const killMarks = timeline.marks.filter((m) => m.kind === 'kill');
  outcome.lives.filter((l) => l.end === 'kill').forEach((l, i) => {
    if (killMarks[i] && (args.mode === 'spill' || l.lost.length > 0)) killMarks[i].label = String(l.lost.length);
  });

  const writeBytes = outcome.io.writeBytes;
  const ioSource = writeBytes > 0 ? 'write_bytes' : outcome.io.wchar > 0 ? 'wchar' : 'unavailable';
  if (ioSource !== 'write_bytes') note(`/proc/<pid>/io write_bytes is 0 here; bytesWrittenPerMessage falls back to ${ioSource} (includes pipes and sockets)`);
  const perMessage = (bytes: number): number => (outcome.accepted > 0 ? Math.round((bytes / outcome.accepted) * 10) / 10 : 0);
  const bytesWrittenPerMessage = perMessage(ioSource === 'write_bytes' ? writeBytes : outcome.io.wchar);
  // In spill mode a cut loses what sits in memory: at most one timeout's worth of readings (then the
  // pending stream spills), plus the one in flight and one publishing tick still on its way to the worker.
  // The device keeps the library's default highWater (10,000 messages).
  const lossBound = lossBoundPerKill(args.rate, args.timeoutMs, 10_000);
  const killed = outcome.lives.filter((l) => l.end === 'kill');
  const extras = {
    durationSeconds: Math.round(timeline.at() / 100) / 10,
    library: stampBefore.hash,
    lostDurable: outcome.lostDurable,
    // Readings accepted after the last flush() confirmation when the power went: the journal's window.
    maxUnconfirmedAtKill: args.mode === 'journal' ? Math.max(0, ...killed.map((l) => (l.lastN ?? 0) - Math.max(l.durableN, (l.firstN ?? 1) - 1))) : null,
    lossBound: args.mode === 'journal' ? 0 : lossBound,
    maxLostPerKill: Math.max(0, ...killed.map((l) => l.lost.length)),
    maxMemory: Math.max(0, ...fleet.lives.map((l) => l.maxMemory)),
    // Restart time is downtime too: no reading can be accepted until open() resolves.
    medianStartMs: median(fleet.lives.map((l) => l.startMs)),
    bytesWritten: ioSource === 'write_bytes' ? writeBytes : outcome.io.wchar,
    // The same without each life's start-up writes (opening LMDB, reserving the seq epoch).
    bytesWrittenPerMessageAfterOpen: perMessage(Math.max(0, writeBytes - outcome.io.writeBytesAtOpen)),
    ioSource,
    wcharPerMessage: perMessage(outcome.io.wchar),
  } as const;

  const svg = renderTimeline(timeline, {
    heading: `holdfast power-cut · ${args.mode} mode · ${args.rate} readings/s · ${outcome.kills} SIGKILLs · seed ${args.seed}`,
    subheading:
      `accepted ${outcome.accepted}, delivered ${outcome.delivered}, lost ${outcome.lost}, duplicates ${outcome.duplicates}, ` +
      `out of order ${outcome.outOfOrder}, disk ${bytesWrittenPerMessage} B/reading (${ioSource})`,
  });
  mkdirSync(dirname(svgPath), { recursive: true });
  writeFileSync(svgPath, svg);

  const machine = describeMachine(broker.kind);
  const stampAfter = libraryStamp();
  const rebuilt = stampAfter.hash !== stampBefore.hash;
  if (rebuilt) note(`holdfast's dist changed during the run (${stampBefore.builtAt} → ${stampAfter.builtAt}): device lives ran different code; this run proves nothing`);
  for (const line of evidence(outcome)) note(line);
  if (args.json) process.stdout.write(`${JSON.stringify(summary(args, outcome, bytesWrittenPerMessage, extras, machine))}\n`);
  else printTable(args, outcome, bytesWrittenPerMessage, extras, machine, relative(process.cwd(), svgPath) || svgPath);

  const orderBroken = outcome.duplicates > 0 || outcome.outOfOrder > 0;
  // Journal: a SIGKILL cannot take what publish() wrote to the intake log, so nothing accepted may go.
  failed = rebuilt || orderBroken || outcome.quarantines > 0 || (args.mode === 'journal' ? outcome.lost > 0 : extras.maxLostPerKill > lossBound);
  if (failed || args.trace !== undefined) {
    const tracePath = args.trace ?? join(tmpdir(), `holdfast-power-cut-${args.mode}-seed${args.seed}-${Date.now()}.jsonl`);
    writeTrace(tracePath, {
      run: { ...summary(args, outcome, bytesWrittenPerMessage, extras, machine), library: stampBefore, libraryAfter: stampAfter },
      plan,
      lives: fleet.lives,
      events: fleet.logs,
      timeline,
      arrivals: auditor.arrivals(clientId),
    });
    note(`trace: ${tracePath}`);
  }
  if (failed) note(rebuilt ? 'power-cut: run invalid (the library was rebuilt during it); run it again' : `power-cut: ${args.mode} mode broke its promise (see the evidence above)`);
} catch (err) {
  failed = true;
  note(`power-cut failed: ${(err as Error).stack ?? String(err)}`);
  const stderr = fleet.stderr().trim();
  if (stderr) note(`device stderr:\n${stderr.split('\n').slice(-30).join('\n')}`);
} finally {
  await fleet.abort().catch(() => undefined);
  await auditor.close();
  await link.close();
  await broker.close();
  rmSync(cacheDir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
