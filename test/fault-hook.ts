/** Test plumbing for supervision: the fault hook, worker-restart events and lost-range checks. */
import assert from 'node:assert/strict';
import { open, type HoldfastClient, type HoldfastOptions } from 'holdfast';

// The hook exists only on clients opened with this set (it is read at open()).
process.env.HOLDFAST_TEST_HOOKS = '1';

/**
 * Files that crash workers on purpose check each crash through the client's events; a client without
 * an 'error' listener also reports it as a process warning, which would be noise in the test output.
 * Only that warning is held back; every other one is printed as before.
 */
const printers = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning: Error) => {
  if (warning.name === 'HoldfastWarning' && warning.message.startsWith('HOLDFAST_WORKER_CRASHED:')) return;
  for (const print of printers) print(warning);
});

export type FaultKind = 'throw' | 'exit' | 'oom' | 'hang' | 'crash-at-seq' | 'slow-restart';

/** `arg`: the seq for 'crash-at-seq', the delay in ms for 'slow-restart'. */
export function injectFault(client: HoldfastClient, kind: FaultKind, arg?: number): void {
  const hook = (client as unknown as Record<symbol, ((kind: FaultKind, arg?: number) => void) | undefined>)[Symbol.for('holdfast.test.injectWorkerFault')];
  assert.equal(typeof hook, 'function', 'the fault hook is installed (HOLDFAST_TEST_HOOKS=1)');
  hook!(kind, arg);
}

export interface Lost {
  count: number;
  ranges: Array<[number, number]>;
}

export interface RestartEvent {
  attempt: number;
  cause: string;
  lost: Lost;
  poison?: { seq: number; reason: string };
}

/** Collects the client's 'worker-restart' events. */
export function restartEvents(client: HoldfastClient): RestartEvent[] {
  const events: RestartEvent[] = [];
  client.on('worker-restart', (e: RestartEvent) => events.push(e));
  return events;
}

export function inRanges(seq: number, lost: Lost): boolean {
  return lost.ranges.some(([a, b]) => seq >= a && seq <= b);
}

/**
 * The readings that never arrived are exactly the ones reported lost: each missing reading's seq is
 * in a reported range, and as many are missing as were reported.
 */
export function assertMissingExactly(seqOf: Map<number, number>, arrived: number[], lost: Lost): void {
  const got = new Set(arrived);
  const missing = [...seqOf.keys()].filter((n) => !got.has(n));
  const outside = missing.filter((n) => !inRanges(seqOf.get(n)!, lost));
  assert.deepEqual(outside, [], `readings missing without being reported lost: ${outside.join(', ')}`);
  assert.equal(missing.length, lost.count, `reported ${lost.count} lost, ${missing.length} missing (${missing.join(', ')})`);
}

export function assertInOrderOnce(arrived: number[]): void {
  for (let i = 1; i < arrived.length; i++) assert.ok(arrived[i]! > arrived[i - 1]!, `reading ${arrived[i]} arrived after ${arrived[i - 1]} (reordered or duplicated)`);
}

/** Awaits `promise`, failing with `what` after `ms` (drained() never settles when a guarantee breaks). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens the cache again (the previous client must have let go of it) and delivers what it holds. */
export async function drainAgain(options: HoldfastOptions): Promise<void> {
  const client = await open(options);
  await within(client.drained(), 30_000, 'drained() after the restart');
  await client.close();
}
