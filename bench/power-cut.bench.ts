/**
 * power-cut: a real Mosquitto (persistent), an auditor subscribed to it directly, and a device process
 * publishing through a faulty link at a fixed rate. A seeded chaos schedule resets and stalls the link,
 * restarts the broker and SIGKILLs the device (a power cut), restarting it on the same cache. At the end
 * the last life drains, and the auditor's arrivals are checked against every reading the device lives
 * accepted: lost, duplicates, out of order, and disk bytes written per accepted reading (flash wear).
 *
 *   pnpm bench power-cut [--mode spill|journal] [--kills N] [--rate R] [--duration S] [--seed X]
 *                        [--timeout-ms T] [--power-loss] [--flush-ms F] [--fsync-ms L] [--device-env KEY=VALUE ...]
 *                        [--quick] [--json] [--write-results] [--svg path] [--trace path]
 *
 * --power-loss puts the cache on the testkit's power-loss layer, so each kill is a real power cut: the
 * device is SIGKILLed, everything it had not synced is dropped, and it restarts on what survived.
 * --fsync-ms L runs the device under the testkit's slow-fsync shim: each of its flushes L ms slower.
 *
 * Exit code 1 when the mode breaks its promise: a reading flush() had confirmed is lost; a kill takes
 * more than its bound (journal: nothing after a SIGKILL, since the intake log holds every accepted
 * reading from before publish() returns; nothing flush() had not confirmed after a power cut; spill:
 * what memory may hold, rate × timeoutMs, and with power loss nothing flush() had confirmed); the last
 * life loses anything; either duplicates or reorders; a life finds its cache unreadable and quarantines
 * it. Also when the library was rebuilt during the run. A broken run writes a trace (JSON lines) with
 * the evidence.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractReadingNumber, lossBoundPerKill, powerLossUnavailable, slowFsync, slowFsyncShim, startAuditor, startBroker, startLinkProxy, startPowerLossLayer, type PowerLossLayer } from '@holdfast/testkit';
import { parsePowerCutArgs } from './power-cut/args.js';
import { runChaos } from './power-cut/chaos.js';
import { Fleet } from './power-cut/fleet.js';
import { describeMachine, printTable, summary } from './power-cut/report.js';
import { computeOutcome, evidence, type LifeOutcome } from './power-cut/results.js';
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
// The committed pictures change only when asked (--write-results); otherwise the timeline is still drawn
// (so the drawing code runs) into a temp dir that is removed at the end.
const picture = `power-cut-${args.mode}${args.powerLoss ? '-power-loss' : ''}`;
const svgTempDir = args.svg === undefined && !args.writeResults ? mkdtempSync(join(tmpdir(), 'holdfast-power-cut-svg-')) : undefined;
const svgPath = args.svg ?? (svgTempDir !== undefined ? join(svgTempDir, `${picture}.svg`) : join(here, 'results', `${picture}.svg`));
const clientId = `power-cut-${args.mode}`;
const DRAIN_TIMEOUT_MS = 120_000;
const AUDIT_SETTLE_MS = 10_000;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? 0;
}

const unavailable = args.powerLoss ? powerLossUnavailable() : undefined;
if (unavailable !== undefined) {
  note(`power-cut --power-loss cannot run here: ${unavailable}`);
  process.exit(2);
}
const shim = args.fsyncMs !== undefined ? slowFsyncShim() : undefined;
if (shim !== undefined && !shim.ok) {
  note(`power-cut --fsync-ms cannot run here: ${shim.reason}`);
  process.exit(2);
}
// Only the device runs slow: the broker, the auditor and the power-loss layer keep this disk's speed.
const slow = args.fsyncMs !== undefined ? slowFsync(args.fsyncMs) : undefined;
const stampBefore = libraryStamp();
const plan = planChaos(args.durationS * 1000, args.kills, seededRandom(args.seed));
const broker = await startBroker({ persistence: true, requireMosquitto: true, log: note });
const link = await startLinkProxy({ targetPort: broker.port });
const auditor = await startAuditor({ url: broker.url, topics: `sensors/${clientId}`, protocolVersion: 5, extract: extractReadingNumber });
const layer: PowerLossLayer | undefined = args.powerLoss ? await startPowerLossLayer() : undefined;
const cacheDir = layer ? join(layer.path, 'cache') : mkdtempSync(join(tmpdir(), 'holdfast-bench-power-cut-'));
const timeline = new Timeline();
const fleet = new Fleet(
  { broker: link.url, clientId, cacheDir, durability: args.mode, flushMs: args.flushMs, rate: args.rate, timeoutMs: args.timeoutMs, deviceEnv: { ...args.deviceEnv, ...slow?.env }, ...(layer ? { powerLoss: layer } : {}) },
  timeline,
);
let failed = false;
try {
  note(`power-cut: ${args.mode} mode, ${args.durationS} s at ${args.rate}/s, ${args.kills} ${args.powerLoss ? 'power cuts (SIGKILL and unsynced writes dropped)' : 'kills'}, seed ${args.seed}${args.fsyncMs !== undefined ? `, every flush ${args.fsyncMs} ms slower` : ''}`);
  await fleet.start();
  await runChaos(plan, { broker, link, fleet, timeline, log: note });
  note(`${(timeline.at() / 1000).toFixed(1)}s draining the last life`);
  await fleet.drain(DRAIN_TIMEOUT_MS);
  const expected = fleet.allAccepted();
  await auditor.waitFor({ [clientId]: expected }, args.mode === 'journal' ? AUDIT_SETTLE_MS : 3000);

  const outcome = computeOutcome(fleet.lives, auditor.arrivals(clientId));
  // Counted after the drain, before close() syncs whatever the layer still holds.
  const layerAtEnd = layer?.stats();
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
  // What one kill may take. A SIGKILL leaves the page cache: journal loses nothing (the intake log
  // holds every accepted reading), spill what only memory held. A power cut also takes the page cache:
  // anything flush() had not yet confirmed (and spill still no more than memory held).
  const boundAt = (l: LifeOutcome): number => {
    const memory = args.mode === 'journal' ? 0 : lossBound;
    if (!args.powerLoss) return memory;
    return args.mode === 'journal' ? l.unconfirmedAtKill : Math.min(memory, l.unconfirmedAtKill);
  };
  const overBound = outcome.lives.filter((l) => l.lost.length > (l.end === 'kill' ? boundAt(l) : 0));
  const cuts = killed.map((l) => fleet.lives[l.life]!.cut).filter((c) => c !== undefined);
  const layerTotal = (key: 'fsyncs' | 'syncedBytes'): number => cuts.reduce((sum, c) => sum + c[key], 0) + (layerAtEnd?.[key] ?? 0);
  const extras = {
    durationSeconds: Math.round(timeline.at() / 100) / 10,
    library: stampBefore.hash,
    powerLoss: args.powerLoss,
    lostConfirmed: outcome.lostConfirmed,
    lostUnconfirmed: outcome.lostUnconfirmed,
    bound: killed.reduce((sum, l) => sum + boundAt(l), 0),
    // Readings accepted after the last flush() confirmation when the power went.
    maxUnconfirmedAtKill: args.flushMs !== undefined ? Math.max(0, ...killed.map((l) => l.unconfirmedAtKill)) : null,
    lossBound: args.mode === 'journal' ? 0 : lossBound,
    maxLostPerKill: Math.max(0, ...killed.map((l) => l.lost.length)),
    flushMs: args.flushMs ?? null,
    fsyncMs: args.fsyncMs ?? 0,
    // What the power cuts dropped: written but never synced, and name operations never committed.
    droppedBytes: layer ? cuts.reduce((sum, c) => sum + c.unsyncedBytes, 0) : null,
    droppedOps: layer ? cuts.reduce((sum, c) => sum + c.pendingOps, 0) : null,
    // Measured under the device by the layer: what really reached the disk, per accepted reading.
    fsyncsPerMessage: layer && outcome.accepted > 0 ? Math.round((layerTotal('fsyncs') / outcome.accepted) * 100) / 100 : null,
    syncedBytesPerMessage: layer && outcome.accepted > 0 ? Math.round(layerTotal('syncedBytes') / outcome.accepted) : null,
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
    heading: `holdfast power-cut · ${args.mode} mode · ${args.rate} readings/s · ${outcome.kills} ${args.powerLoss ? 'power cuts (page cache lost)' : 'SIGKILLs'} · seed ${args.seed}`,
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
  else printTable(args, outcome, bytesWrittenPerMessage, extras, machine, svgTempDir !== undefined ? 'not kept (--write-results writes bench/results/, --svg path elsewhere)' : relative(process.cwd(), svgPath) || svgPath);

  const orderBroken = outcome.duplicates > 0 || outcome.outOfOrder > 0;
  for (const l of overBound) note(`life ${l.life} (${l.end}) lost ${l.lost.length}, more than its bound ${l.end === 'kill' ? boundAt(l) : 0}`);
  failed = rebuilt || orderBroken || outcome.quarantines > 0 || outcome.lostConfirmed > 0 || overBound.length > 0;
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
  if (layer) await layer.close();
  else rmSync(cacheDir, { recursive: true, force: true });
  if (svgTempDir !== undefined) rmSync(svgTempDir, { recursive: true, force: true });
  slow?.remove();
}
process.exitCode = failed ? 1 : 0;
