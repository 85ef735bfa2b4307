/**
 * The worker side of the test-only fault hook (see ../test-hooks.ts). Only wired when the facade was
 * opened with HOLDFAST_TEST_HOOKS=1; otherwise main.ts ignores testFault messages.
 */
import type { TestFault } from '../protocol.js';

const crashSeqs = new Set<number>();

/** Dies now, the way the fault names. */
export function dieBy(fault: TestFault): void {
  switch (fault.kind) {
    case 'throw':
      // Outside any caller's try/catch: an uncaught exception, as a bug would throw.
      setImmediate(() => {
        throw new Error('holdfast test fault: uncaught exception in the worker');
      });
      return;
    case 'exit':
      // As any code in the worker may: fatal.ts turns it into a reported death.
      return process.exit(70);
    case 'oom':
      allocateForever();
      return;
    case 'hang':
      // Blocks the event loop without spinning a core; only worker.terminate() ends it.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      return;
    case 'crash-at-seq':
      crashSeqs.add(fault.seq);
      return;
    case 'slow-restart':
      // For replacements only (delayRestart): this worker has started already.
      return;
  }
}

/** A replacement worker armed with 'slow-restart' (the last one armed) waits before it touches the cache. */
export async function delayRestart(faults: readonly TestFault[]): Promise<void> {
  const slow = faults.findLast((fault) => fault.kind === 'slow-restart');
  if (slow) await new Promise((resolve) => setTimeout(resolve, slow.ms));
}

/** Called as each record is about to be sent (working-mark.ts): crashes on an armed one, before it goes. */
export function crashIfArmed(seq: number): void {
  if (!crashSeqs.has(seq)) return;
  const err = new Error(`holdfast test fault: crash while handling seq ${seq}`);
  // Thrown here so the record is not handled; thrown again on its own so nothing can swallow it.
  setImmediate(() => {
    throw err;
  });
  throw err;
}

/** Grows the JS heap until the worker's resourceLimits end the thread (ERR_WORKER_OUT_OF_MEMORY). */
function allocateForever(): void {
  const hoard: unknown[] = [];
  for (;;) hoard.push(new Array<number>(1 << 16).fill(hoard.length));
}
