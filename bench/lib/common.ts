/**
 * What every benchmark shares: flags, the machine description, and output as either one JSON
 * summary line (--json, nothing else on stdout) or a readable table (progress goes to stderr).
 */
import { cpus, availableParallelism, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

export interface BenchArgs {
  json: boolean;
  quick: boolean;
  /** Numeric flags such as --rtt-ms 100 or --backlog 60000. */
  numbers: Record<string, number>;
}

export function parseBenchArgs(numericFlags: readonly string[] = []): BenchArgs {
  const options: Record<string, { type: 'boolean' | 'string' }> = { json: { type: 'boolean' }, quick: { type: 'boolean' } };
  for (const flag of numericFlags) options[flag] = { type: 'string' };
  const { values } = parseArgs({ args: process.argv.slice(2), options, strict: true, allowPositionals: false });
  const numbers: Record<string, number> = {};
  for (const flag of numericFlags) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (typeof raw !== 'string' || !Number.isFinite(n) || n < 0) throw new Error(`--${flag} must be a non-negative number; got ${String(raw)}`);
    numbers[flag] = n;
  }
  return { json: values.json === true, quick: values.quick === true, numbers };
}

export interface Machine {
  nproc: number;
  cpu: string;
  node: string;
  mosquitto: string;
}

export function describeMachine(brokerKind = 'mosquitto'): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) cpu = line.split(':')[1]!.trim();
  } catch {
    // Not Linux: os.cpus() is good enough.
  }
  return { nproc: availableParallelism(), cpu, node: process.version, mosquitto: brokerKind };
}

/** Progress for humans; stderr so --json keeps stdout to the one summary line. */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Prints the summary: one JSON line with --json, otherwise a two-column table with the machine. */
export function report(args: BenchArgs, summary: Record<string, unknown>, rows: Array<[string, string]>, machine: Machine): void {
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const all: Array<[string, string]> = [
    ...rows,
    ['machine', `${machine.nproc} × ${machine.cpu}`],
    ['node', machine.node],
    ['broker', machine.mosquitto],
  ];
  const width = Math.max(...all.map(([k]) => k.length));
  const valueWidth = Math.max(...all.map(([, v]) => v.length));
  const rule = `${'─'.repeat(width + 2)}┼${'─'.repeat(valueWidth + 2)}`;
  console.log(`\n${String(summary.bench)}${args.quick ? ' (quick)' : ''}`);
  console.log(rule);
  for (const [k, v] of all) console.log(` ${k.padEnd(width)} │ ${v}`);
  console.log(rule);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The q-quantile (0..1) of an already sorted array, nearest rank. */
export function quantile(sorted: Float64Array | readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `holdfast-bench-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it is true; throws with `what` after timeoutMs. */
export async function until(check: () => boolean, timeoutMs: number, what: string, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
