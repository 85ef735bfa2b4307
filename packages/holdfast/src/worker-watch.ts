import { Stat } from './protocol.js';

/** Heartbeat checks (one a second) that find the worker's counter unchanged before it counts as hung. */
const HANG_CHECKS = 15;

/**
 * Why the current worker died: its last error (an uncaught exception, a 'fatal' message), or a blocked
 * event loop, which this watch finds from the heartbeat the worker counts up every second in shared
 * memory, and ends.
 */
export class WorkerWatch {
  readonly #stats: Float64Array;
  readonly #watching: () => boolean;
  readonly #terminate: () => void;
  readonly #timer: NodeJS.Timeout;
  #lastError: string | undefined;
  #hung = false;
  #lastBeat = -1;
  #stalledChecks = 0;

  /** `watching`: whether a worker is running now; `terminate`: ends it. */
  constructor(stats: Float64Array, watching: () => boolean, terminate: () => void) {
    this.#stats = stats;
    this.#watching = watching;
    this.#terminate = terminate;
    this.#timer = setInterval(() => this.#checkHeartbeat(), 1000).unref();
  }

  /** A new worker: nothing is held against it yet. */
  reset(): void {
    this.#lastError = undefined;
    this.#hung = false;
    this.#stalledChecks = 0;
  }

  /** Its 'error' event, or the cause in its 'fatal' message. */
  errored(message: string): void {
    this.#lastError = message;
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Why the worker died, for the crash report. */
  cause(exitCode: number): string {
    return this.#hung ? `its event loop was blocked for ${HANG_CHECKS} s, so it was terminated` : (this.#lastError ?? `it exited with code ${exitCode}`);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #checkHeartbeat(): void {
    if (!this.#watching()) return;
    const beat = this.#stats[Stat.heartbeat]!;
    this.#stalledChecks = beat === this.#lastBeat ? this.#stalledChecks + 1 : 0;
    this.#lastBeat = beat;
    if (this.#stalledChecks < HANG_CHECKS || this.#hung) return;
    this.#hung = true;
    this.#terminate();
  }
}
