/**
 * The flash bench's readable table: one row per case and injected latency, holdfast then the baseline.
 */
import type { Machine } from '../lib/common.js';
import type { FlashResult, FlashSettings } from './cases.js';

const HEADER = ['', 'fsync ms', 'fsyncs/reading', 'of them O_DSYNC', 'disk ms/fsync', 'bytes/reading', 'readings/s', 'catch-up s'];

function row(label: string, r: FlashResult): string[] {
  const num = (n: number, digits: number): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');
  return [
    label,
    String(r.fsyncMs),
    num(r.fsyncsPerReading, 2),
    num(r.dsyncWritesPerReading, 2),
    r.fsyncsPerReading > 0 ? num(r.diskMsPerFsync, 2) : '–',
    num(r.bytesPerReading, 0),
    num(r.readingsPerSecond, 1),
    r.catchUpSeconds === null ? (r.case.startsWith('drain') ? 'never' : '–') : num(r.catchUpSeconds, 1),
  ];
}

export function printFlashTable(results: readonly FlashResult[], baseline: readonly FlashResult[], s: FlashSettings & { quick: boolean }, machine: Machine): void {
  const rows = [HEADER, ...results.map((r) => row(r.case, r)), ...baseline.map((r) => row(`baseline ${r.case}`, r))];
  const widths = HEADER.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' │ ');
  const rule = widths.map((w) => '─'.repeat(w)).join('─┼─');
  console.log(`\nflash${s.quick ? ' (quick)' : ''}`);
  console.log(line(rows[0]!));
  console.log(rule);
  for (const r of rows.slice(1, results.length + 1)) console.log(line(r));
  console.log(rule);
  for (const r of rows.slice(results.length + 1)) console.log(line(r));
  console.log(rule);
  console.log(
    [
      `journal, spill: healthy link; costs over ${s.count} readings at ${s.rate}/s; readings/s = delivered in a ${s.windowS} s closed loop (≤ ${s.outstanding} outstanding)`,
      `drain, drain-bulk: spill mode behind a link proxy; costs and readings/s over the drain of a ${s.drainOutageS} s outage's backlog (${Math.round(s.rate * s.drainOutageS)} readings, none arriving meanwhile)`,
      `catch-up: a ${s.outageS} s outage at ${s.rate}/s, from the link's return to an empty cache while ${s.rate}/s keep coming; never = the backlog had not shrunk ${s.giveUpS} s after reconnecting, or the cache was not empty after ${s.capS} s`,
      'baseline: plain lmdb-js, each reading put (journal) or removed (drain) in its own synced commit, no MQTT',
      'fsyncs: every flush the shim delayed (fsync, fdatasync, msync(MS_SYNC), sync_file_range, writes to O_DSYNC descriptors); disk ms/fsync: the real call, before the injected delay; bytes: /proc/<pid>/io write_bytes',
      `machine: ${machine.nproc} × ${machine.cpu}, node ${machine.node}, broker ${machine.mosquitto}`,
    ].join('\n'),
  );
}
