import { defaultClientId, resolveConnection } from '../args/connection.js';
import { UsageError } from '../args/usage-error.js';
import { parseDuration, parseText } from '../args/values.js';
import { logJson } from '../output/log.js';
import { onStopSignal } from '../output/signals.js';
import { StatusLine } from '../output/status-line.js';
import { readingsOf } from './extract.js';
import { subscribe } from './subscriber.js';
import { SeqTracker, type AuditEvent, type AuditSummary } from './tracker.js';

/** Live lines of one kind are shown up to this many; the summary has the totals. */
const LIVE_LINES_PER_KIND = 20;

export interface AuditArgs {
  topic: ReadonlyArray<string | number>;
  duration?: string | undefined;
  json: boolean;
  'keep-session': boolean;
  'progress-every': string;
}

function progressText(s: AuditSummary): string {
  return `devices ${Object.keys(s.devices).length} | received ${s.received} | unique ${s.unique} | lost ${s.lost} | duplicates ${s.duplicates} | reordered ${s.outOfOrder}`;
}

function describeEvent(e: AuditEvent): string {
  switch (e.event) {
    case 'gap':
      return `GAP       ${e.device}: ${e.count} missing (seq ${e.from}${e.count > 1 ? `..${e.to}` : ''})`;
    case 'late':
      return `REORDERED ${e.device}: seq ${e.seq} arrived late (fills a gap)`;
    case 'duplicate':
      return `DUPLICATE ${e.device}: seq ${e.seq}`;
    case 'epoch':
      return `RESTART   ${e.device}: new epoch ${e.epoch} (the publisher restarted)`;
  }
}

function printSummary(s: AuditSummary, elapsedMs: number): void {
  const lines = [`audited ${Math.round(elapsedMs / 1000)} s: ${Object.keys(s.devices).length} device(s), ${s.received} readings received`];
  for (const [name, d] of Object.entries(s.devices)) {
    lines.push(`  ${name}: unique ${d.unique}, lost ${d.lost}, duplicates ${d.duplicates}, reordered ${d.outOfOrder}${d.missing.length > 0 ? `, first missing ${d.missing.slice(0, 5).join(', ')}` : ''}`);
  }
  if (s.unidentified > 0) lines.push(`  ${s.unidentified} message(s) carried no device and seq (not holdfast readings) and were not counted`);
  lines.push(s.lost === 0 ? `verdict: lost 0, duplicates ${s.duplicates}, reordered ${s.outOfOrder}: nothing lost` : `verdict: LOST ${s.lost}, duplicates ${s.duplicates}, reordered ${s.outOfOrder}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Without --client-id, an audit that drops its session at exit gets an id of its own process: two
 * audits on one host under one id would take the session from each other on every reconnect, each
 * counting what the other received as lost. --keep-session needs the stable id to be resumed.
 */
function auditClientId(keepSession: boolean): string {
  const stable = defaultClientId('holdfast-audit');
  return keepSession ? stable : `${stable}-${process.pid}`;
}

export async function runAudit(args: AuditArgs & Parameters<typeof resolveConnection>[0]): Promise<number> {
  const connection = resolveConnection(args);
  const topics = args.topic.map((t) => parseText('--topic', String(t)) ?? '');
  if (topics.length === 0) throw new UsageError('--topic', 'at least one topic filter');
  const durationMs = args.duration === undefined ? undefined : parseDuration('--duration', args.duration, { minMs: 100 });
  const progressEveryMs = parseDuration('--progress-every', args['progress-every'], { minMs: 100 });
  const tracker = new SeqTracker();
  const line = !args.json && process.stdout.isTTY ? new StatusLine(process.stdout) : undefined;
  const shown = new Map<string, number>();
  const note = (msg: string, fields: Record<string, unknown> = {}): void => {
    if (args.json) logJson('info', msg, fields, process.stderr);
    else if (line) line.note(msg);
    else process.stdout.write(`${msg}\n`);
  };
  const onEvent = (e: AuditEvent): void => {
    if (args.json) {
      process.stdout.write(`${JSON.stringify(e)}\n`);
      return;
    }
    const n = (shown.get(e.event) ?? 0) + 1;
    shown.set(e.event, n);
    if (n <= LIVE_LINES_PER_KIND) note(describeEvent(e));
    else if (n === LIVE_LINES_PER_KIND + 1) note(`(more ${e.event} events are counted in the summary)`);
  };

  const started = performance.now();
  // Listening from the start: Ctrl-C while connecting still ends with a summary, not a kill.
  const stop = onStopSignal();
  try {
    const clientId = connection.clientId ?? auditClientId(args['keep-session']);
    const subscriber = await subscribe({
      connection,
      clientId,
      topics,
      sessionExpirySec: 3600,
      onMessage: (topic, payload, properties) => {
        let readings;
        try {
          readings = readingsOf(topic, payload, properties);
        } catch (err) {
          note(`a message on ${topic} looked like a bulk but did not unpack: ${(err as Error).message}`);
          tracker.unidentified++;
          return;
        }
        if (readings.length === 0) tracker.unidentified++;
        for (const r of readings) tracker.record(r, onEvent);
      },
      onNote: (msg, fields) => note(fields ? `${msg} ${JSON.stringify(fields)}` : msg, fields),
    });
    note(`auditing ${topics.join(', ')} on ${connection.broker} as ${clientId} (MQTT ${subscriber.protocolVersion === 5 ? '5' : '3.1.1'})${durationMs === undefined ? '; Ctrl-C for the summary' : ''}`);

    // A live line on a terminal; piped (a log, journald), a progress line every --progress-every.
    const ticker = setInterval(
      () => {
        const s = tracker.summary();
        if (line) line.update(progressText(s));
        else if (args.json) logJson('info', 'progress', { elapsedMs: Math.round(performance.now() - started), received: s.received, unique: s.unique, lost: s.lost, duplicates: s.duplicates, outOfOrder: s.outOfOrder }, process.stderr);
        else process.stdout.write(`progress ${Math.round((performance.now() - started) / 1000)} s: ${progressText(s)}\n`);
      },
      line ? 500 : progressEveryMs,
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stop.signal, new Promise<void>((resolve) => (timer = durationMs === undefined ? undefined : setTimeout(resolve, durationMs)))]);
    clearTimeout(timer);
    clearInterval(ticker);
    line?.end();
    await subscriber.close(args['keep-session']);

    const summary = tracker.summary();
    if (args.json) process.stdout.write(`${JSON.stringify({ event: 'summary', durationMs: Math.round(performance.now() - started), ...summary })}\n`);
    else printSummary(summary, performance.now() - started);
    return summary.lost > 0 ? 1 : 0;
  } finally {
    stop.dispose();
  }
}

