/**
 * The bench's output: the one-line JSON summary (--json) or a readable table, plus the machine it ran on.
 */
import { availableParallelism, cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import type { PowerCutArgs } from './args.js';
import type { Outcome } from './results.js';

export interface Machine {
  nproc: number;
  cpu: string;
  node: string;
  broker: string;
}

export function describeMachine(broker: string): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) cpu = line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // Not Linux: os.cpus() is good enough.
  }
  return { nproc: availableParallelism(), cpu, node: process.version, broker };
}

export interface Extras {
  durationSeconds: number;
  /** Fingerprint of the built library the devices ran. */
  library: string;
  powerLoss: boolean;
  /** Lost readings that flush() had confirmed before the kill: must be 0. */
  lostConfirmed: number;
  /** Lost readings accepted after the last confirmation. */
  lostUnconfirmed: number;
  /** The most the kills may take, summed over them. */
  bound: number;
  /** Most readings accepted but not yet confirmed by flush() at a kill (null when flush() is not called). */
  maxUnconfirmedAtKill: number | null;
  lossBound: number;
  maxLostPerKill: number;
  flushMs: number | null;
  /** The injected latency of every flush (--fsync-ms), 0 without the shim. */
  fsyncMs: number;
  /** Power loss: bytes written but never synced, and name operations never committed, that the cuts dropped. */
  droppedBytes: number | null;
  droppedOps: number | null;
  /** Power loss: fsyncs and bytes that reached the disk, per accepted reading, counted by the layer. */
  fsyncsPerMessage: number | null;
  syncedBytesPerMessage: number | null;
  maxMemory: number;
  medianStartMs: number;
  bytesWritten: number;
  bytesWrittenPerMessageAfterOpen: number;
  ioSource: 'write_bytes' | 'wchar' | 'unavailable';
  wcharPerMessage: number;
}

/** The summary line: the fields the issue names first, in its order, then the extras. */
export function summary(args: PowerCutArgs, o: Outcome, bytesWrittenPerMessage: number, x: Extras, machine: Machine): Record<string, unknown> {
  return {
    bench: 'power-cut',
    mode: args.mode,
    accepted: o.accepted,
    delivered: o.delivered,
    lost: o.lost,
    duplicates: o.duplicates,
    outOfOrder: o.outOfOrder,
    kills: o.kills,
    bytesWrittenPerMessage,
    quarantines: o.quarantines,
    ...x,
    rate: args.rate,
    timeoutMs: args.timeoutMs,
    seed: args.seed,
    quick: args.quick,
    machine,
  };
}

export function printTable(args: PowerCutArgs, o: Outcome, bytesWrittenPerMessage: number, x: Extras, machine: Machine, svgPath: string): void {
  const int = (n: number): string => Math.round(n).toLocaleString('en-US');
  const perKill = o.lives.filter((l) => l.end === 'kill').map((l) => l.lost.length);
  const rows: Array<[string, string]> = [
    ['mode', `${args.mode}${args.quick ? ' (quick)' : ''}`],
    ['run', `${x.durationSeconds} s at ${args.rate} readings/s, timeoutMs ${args.timeoutMs}, seed ${args.seed}`],
    ['accepted', int(o.accepted)],
    ['delivered (unique)', int(o.delivered)],
    ['lost', int(o.lost)],
    ['  confirmed by flush() (must be 0)', int(x.lostConfirmed)],
    ['  not yet confirmed', `${int(x.lostUnconfirmed)} (bound ${int(x.bound)})`],
    ['duplicates', int(o.duplicates)],
    ['out of order', int(o.outOfOrder)],
    [x.powerLoss ? 'power cuts (SIGKILL + page cache)' : 'kills (SIGKILL)', String(o.kills)],
    ['caches quarantined on open', String(o.quarantines)],
    ['lost per kill', perKill.length > 0 ? perKill.join(' ') : '-'],
    ['injected flush latency', x.fsyncMs > 0 ? `${x.fsyncMs} ms per fsync (the testkit's slow-fsync shim)` : 'none'],
    ['flush()', x.flushMs === null ? 'not called' : `every ${x.flushMs} ms; at most ${int(x.maxUnconfirmedAtKill ?? 0)} readings not yet confirmed at a kill`],
    ...(args.mode === 'spill' ? [['loss bound per kill (memory)', `${int(x.lossBound)} (rate × timeoutMs + one tick + in flight)`] as [string, string]] : []),
    ...(x.powerLoss
      ? ([
          ['dropped by the cuts', `${int(x.droppedBytes ?? 0)} unsynced bytes, ${int(x.droppedOps ?? 0)} uncommitted name operations`],
          ['reached the disk, per message', `${x.fsyncsPerMessage} fsyncs, ${int(x.syncedBytesPerMessage ?? 0)} bytes (counted by the layer)`],
        ] as Array<[string, string]>)
      : []),
    ['max memory depth', int(x.maxMemory)],
    ['device start (spawn → open)', `${int(x.medianStartMs)} ms median`],
    [`disk bytes/message (${x.ioSource})`, bytesWrittenPerMessage.toFixed(1)],
    ['disk bytes total', int(x.bytesWritten)],
    ['  without start-ups, per message', x.bytesWrittenPerMessageAfterOpen.toFixed(1)],
    ['wchar bytes/message', `${x.wcharPerMessage.toFixed(1)} (includes stdout pipe and sockets)`],
    ['timeline', svgPath],
    ['machine', `${machine.nproc} × ${machine.cpu}`],
    ['node', machine.node],
    ['broker', machine.broker],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const rule = '─'.repeat(width + 2) + '┼' + '─'.repeat(Math.max(...rows.map(([, v]) => v.length)) + 2);
  console.log('\npower-cut');
  console.log(rule);
  for (const [k, v] of rows) console.log(` ${k.padEnd(width)} │ ${v}`);
  console.log(rule);
}
