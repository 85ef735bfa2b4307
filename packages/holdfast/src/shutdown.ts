/**
 * What Supervisor.close() waits on and reports: its deadline (closeTimeoutMs + 2 s), a restart in
 * progress, the close handshake with a live worker (close-worker.ts), and its outcome when no worker
 * is left to close. The supervisor keeps the phase and picks which of these applies.
 */
import { closeWorker, lostAtClose, type ClosingWorker } from './close-worker.js';
import { ErrorCodes, type HoldfastError } from './errors.js';
import type { LostReadings } from './seq-ranges.js';

/** Time the worker gets beyond closeTimeoutMs before it is terminated. */
const CLOSE_GRACE_MS = 2000;

/** The live worker, whichever it is when close() comes (see ClosingWorker). */
export type ClosableWorker = Pick<ClosingWorker, 'terminate' | 'unsaved' | 'lastError'>;

export class Shutdown {
  readonly #budgetMs: number;
  readonly #worker: ClosableWorker;
  #restartWaiters: Array<() => void> = [];
  #onWorkerExit: (() => void) | undefined;

  constructor(closeTimeoutMs: number, worker: ClosableWorker) {
    this.#budgetMs = closeTimeoutMs + CLOSE_GRACE_MS;
    this.#worker = worker;
  }

  /** performance.now() by which close() must be over. */
  deadline(): number {
    return performance.now() + this.#budgetMs;
  }

  /** Resolves once the restart in progress settles (restartSettled()), or at the deadline. */
  untilRestarted(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
      this.#restartWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** A replacement worker is running, or the client failed. */
  restartSettled(): void {
    for (const wake of this.#restartWaiters.splice(0)) wake();
  }

  /** close() of a failed client rejects with the failure only if that lost readings. */
  afterFailure(failure: HoldfastError | undefined): void {
    if ((failure?.details?.lost as LostReadings | undefined)?.count) throw failure!;
  }

  /** close() gave up waiting for a restart: what waited for the next worker is lost. */
  restartTimedOut(waiting: LostReadings): HoldfastError {
    return lostAtClose(ErrorCodes.TIMEOUT, 'close() timed out while the worker was restarting', waiting);
  }

  /**
   * Closes the live worker by the deadline, given its `reply` to the 'close' request; workerExited()
   * must be called when its thread ends.
   */
  closeWorker(reply: Promise<unknown>, deadline: number): Promise<void> {
    const exited = new Promise<'exit'>((resolve) => (this.#onWorkerExit = () => resolve('exit')));
    const { terminate, unsaved, lastError } = this.#worker;
    return closeWorker({ reply, exited, deadline, budgetMs: this.#budgetMs, terminate, unsaved, lastError });
  }

  workerExited(): void {
    this.#onWorkerExit?.();
  }
}
