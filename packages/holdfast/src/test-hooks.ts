/**
 * The test-only fault hook. With HOLDFAST_TEST_HOOKS=1 in the environment at open(),
 * `client[Symbol.for('holdfast.test.injectWorkerFault')](kind, arg?)` makes the worker die as asked:
 *   'throw'         an uncaught exception
 *   'exit'          process.exit() inside the worker
 *   'oom'           allocate until the worker's resourceLimits end it
 *   'hang'          block the worker's event loop (only terminate() ends it)
 *   'crash-at-seq'  crash just before the record `arg` (a seq) is handed to MQTT.js, in this worker and
 *                   every replacement (a record that crashes the worker every time it is sent)
 *   'slow-restart'  not a death: every later replacement worker waits `arg` ms (1..600000) before it
 *                   takes the lock and opens the cache, so a test can act while a restart is under way
 *                   (past the 30 s start timeout, that start fails and the next try waits again)
 * Without the variable the method does not exist and the worker ignores the message. Chaos campaigns
 * and the supervision tests drive the supervisor through it.
 */
import { ErrorCodes, HoldfastError } from './errors.js';
import type { TestFault } from './protocol.js';

export const INJECT_WORKER_FAULT = Symbol.for('holdfast.test.injectWorkerFault');

export type WorkerFaultKind = TestFault['kind'];

export function testHooksEnabled(): boolean {
  return process.env.HOLDFAST_TEST_HOOKS === '1';
}

const KINDS: readonly WorkerFaultKind[] = ['throw', 'exit', 'oom', 'hang', 'crash-at-seq', 'slow-restart'];
/** Longest 'slow-restart' delay: longer than any test waits, short enough to be a typo's bound. */
const MAX_SLOW_RESTART_MS = 600_000;

export function parseFault(kind: unknown, arg: unknown): TestFault {
  if (!KINDS.includes(kind as WorkerFaultKind)) {
    throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, `injectWorkerFault(kind): kind must be one of ${KINDS.join(', ')}`, { details: { field: 'kind' } });
  }
  if (kind === 'crash-at-seq') {
    if (typeof arg !== 'number' || !Number.isSafeInteger(arg) || arg <= 0) {
      throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, "injectWorkerFault('crash-at-seq', seq): seq must be a seq publish() returned", { details: { field: 'seq' } });
    }
    return { kind, seq: arg };
  }
  if (kind === 'slow-restart') {
    if (typeof arg !== 'number' || !Number.isSafeInteger(arg) || arg < 1 || arg > MAX_SLOW_RESTART_MS) {
      throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, `injectWorkerFault('slow-restart', ms): ms must be a whole number from 1 to ${MAX_SLOW_RESTART_MS}`, { details: { field: 'ms' } });
    }
    return { kind, ms: arg };
  }
  return { kind: kind as Exclude<WorkerFaultKind, 'crash-at-seq' | 'slow-restart'> };
}

/** Faults every later replacement worker starts with (WorkerInit.stickyFaults). */
export function isSticky(fault: TestFault): boolean {
  return fault.kind === 'crash-at-seq' || fault.kind === 'slow-restart';
}

/** Adds the hook method to `client` (only called when testHooksEnabled() was true at open()). */
export function installTestHooks(client: object, inject: (fault: TestFault) => void): void {
  Object.defineProperty(client, INJECT_WORKER_FAULT, {
    value: (kind: unknown, arg?: unknown) => inject(parseFault(kind, arg)),
    enumerable: false,
  });
}
