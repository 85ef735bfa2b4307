/**
 * The test-only fault hook. With HOLDFAST_TEST_HOOKS=1 in the environment at open(),
 * `client[Symbol.for('holdfast.test.injectWorkerFault')](kind, seq?)` makes the worker die as asked:
 *   'throw'         an uncaught exception
 *   'exit'          process.exit() inside the worker
 *   'oom'           allocate until the worker's resourceLimits end it
 *   'hang'          block the worker's event loop (only terminate() ends it)
 *   'crash-at-seq'  crash just before the record `seq` is handed to MQTT.js, in this worker and every
 *                   replacement (a record that crashes the worker every time it is sent)
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

const KINDS: readonly WorkerFaultKind[] = ['throw', 'exit', 'oom', 'hang', 'crash-at-seq'];

export function parseFault(kind: unknown, seq: unknown): TestFault {
  if (!KINDS.includes(kind as WorkerFaultKind)) {
    throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, `injectWorkerFault(kind): kind must be one of ${KINDS.join(', ')}`, { details: { field: 'kind' } });
  }
  if (kind !== 'crash-at-seq') return { kind: kind as Exclude<WorkerFaultKind, 'crash-at-seq'> };
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) {
    throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, "injectWorkerFault('crash-at-seq', seq): seq must be a seq publish() returned", { details: { field: 'seq' } });
  }
  return { kind, seq };
}

/** Adds the hook method to `client` (only called when testHooksEnabled() was true at open()). */
export function installTestHooks(client: object, inject: (fault: TestFault) => void): void {
  Object.defineProperty(client, INJECT_WORKER_FAULT, {
    value: (kind: unknown, seq?: unknown) => inject(parseFault(kind, seq)),
    enumerable: false,
  });
}
