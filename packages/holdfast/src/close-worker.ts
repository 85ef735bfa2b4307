import { ErrorCodes, HoldfastError } from './errors.js';
import { describeLost, SeqRanges, type LostReadings } from './seq-ranges.js';

export interface ClosingWorker {
  /** The worker's answer to 'close': it spilled, disconnected and closed the cache. */
  reply: Promise<unknown>;
  /** Resolves when the thread has ended. */
  exited: Promise<'exit'>;
  /** performance.now() by which it must be over. */
  deadline: number;
  budgetMs: number;
  terminate(): Promise<unknown>;
  /** What the worker holds that is not safe, read from shared memory (see WorkerLosses). */
  unsaved(): LostReadings;
  lastError(): string | undefined;
}

/**
 * The close handshake with a live worker, bounded by its deadline. Resolves only if every reading is
 * safe; otherwise rejects naming what was lost: HOLDFAST_TIMEOUT when the worker had to be terminated,
 * HOLDFAST_CACHE_WRITE_FAILED when its final spill was refused (a full disk), HOLDFAST_WORKER_CRASHED
 * when it died meanwhile, or the worker's own error.
 */
export async function closeWorker(w: ClosingWorker): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(0, w.deadline - performance.now()))));
  const reply = w.reply.then(
    () => ({ err: undefined }),
    (err: HoldfastError) => ({ err }),
  );
  try {
    let first = await Promise.race([reply, w.exited, timeout]);
    // 'exit' can overtake the reply, which is then read from the port as the exit is handled.
    if (first === 'exit') first = await Promise.race([reply, new Promise<'exit'>((resolve) => setImmediate(() => resolve('exit')))]);
    if (first === 'timeout') {
      await w.terminate();
      throw lostAtClose(ErrorCodes.TIMEOUT, `close() timed out after ${w.budgetMs} ms and terminated the worker`, w.unsaved());
    }
    if (first === 'exit') throw lostAtClose(ErrorCodes.WORKER_CRASHED, `the holdfast worker died during close() (${w.lastError() ?? 'it exited'})`, w.unsaved());
    if (first.err) throw first.err;
    if ((await Promise.race([w.exited, timeout])) === 'timeout') await w.terminate();
    const lost = w.unsaved();
    if (lost.count > 0) throw lostAtClose(ErrorCodes.CACHE_WRITE_FAILED, 'close() could not write every pending reading to the cache', lost);
  } finally {
    clearTimeout(timer);
  }
}

export function lostAtClose(code: typeof ErrorCodes.TIMEOUT | typeof ErrorCodes.WORKER_CRASHED | typeof ErrorCodes.CACHE_WRITE_FAILED, what: string, lost: LostReadings): HoldfastError {
  const saved = lost.count === 0 ? 'nothing was lost: every accepted reading is delivered, in the cache, or in the intake log' : `lost: ${describeLost(lost)}`;
  return new HoldfastError(code, `${what}; ${saved}`, { details: { lost } });
}

/** The worker's close(): readings a full disk would not take before the deadline are lost, named by seq. */
export function unsavedAtClose(seqs: readonly number[]): HoldfastError {
  const lost = new SeqRanges();
  for (const seq of [...seqs].sort((a, b) => a - b)) lost.add(seq);
  return lostAtClose(ErrorCodes.CACHE_WRITE_FAILED, 'close() could not write every pending reading to the cache', lost.from(0));
}
