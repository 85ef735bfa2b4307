/**
 * The worker is never a single point of failure. The supervisor owns the worker thread: it starts it,
 * posts to it, and when it dies (an uncaught exception, process.exit, its heap limit, a blocked event
 * loop) starts another on the same cache while publish() keeps accepting:
 *
 * - What the facade posts meanwhile waits here and goes to the new worker once it is ready; requests
 *   the dead worker never answered are sent again (subscriptions too).
 * - What died with the worker is counted (worker-losses.ts) and reported with its seq ranges in a
 *   'worker-restart' event and in stats().
 * - A record the worker keeps dying on is dead-lettered by the next worker (restart-policy.ts).
 * - After several failed tries in a row the client is 'failed' (HOLDFAST_WORKER_FAILED).
 *
 * Every phase change happens here; what close() waits on and reports is in shutdown.ts.
 */
import { randomUUID } from 'node:crypto';
import { receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { ErrorCodes, HoldfastError } from './errors.js';
import { IntakeLog } from './intake-log.js';
import type { ResolvedOptions } from './options.js';
import { Outbox, type Request } from './outbox.js';
import { EPOCH_SPAN, Stat, STATES, STAT_SLOTS, type FromWorker, type RestartInit, type TestFault, type ToWorker, type WorkerInit, type WorkerReady } from './protocol.js';
import { RestartPolicy } from './restart-policy.js';
import type { LostReadings, SeqRange } from './seq-ranges.js';
import { Shutdown } from './shutdown.js';
import { HostRelay, type SupervisorHost } from './supervisor-host.js';
import { isSticky } from './test-hooks.js';
import { CacheCipher } from './worker/cipher.js';
import { releaseCacheLock } from './worker/cache-lock.js';
import { clearLiveSlots, crashedError, failedError, flushLostError, startAfter, WorkerLosses } from './worker-losses.js';
import { spawnFirstWorker, spawnWorker, type SpawnedWorker } from './worker-spawn.js';
import { WorkerWatch } from './worker-watch.js';

export type { SupervisionEventName, SupervisorHost } from './supervisor-host.js';

type Phase = 'running' | 'restarting' | 'failed' | 'closing' | 'closed';

/** What every worker of this client starts with (a replacement also gets its RestartInit). */
type SpawnInit = Omit<WorkerInit, 'port' | 'restart'>;

export class Supervisor {
  readonly stats: Float64Array;
  /** The first worker's ready message (epoch, quarantine, journal key). */
  readonly ready: WorkerReady;
  /** Journal mode's intake log, written by publish() on the app thread. */
  readonly intake: IntakeLog | undefined;
  readonly #init: SpawnInit;
  readonly #host = new HostRelay();

  #phase: Phase = 'running';
  #worker!: Worker;
  #port!: MessagePort;
  readonly #watch: WorkerWatch;
  #restartTimer: NodeJS.Timeout | undefined;
  /** A replacement worker is starting (it may have the cache open already). */
  #spawning = false;

  readonly #outbox: Outbox;
  readonly #losses: WorkerLosses;
  readonly #shutdown: Shutdown;

  readonly #policy: RestartPolicy;
  #restarts = 0;
  #failure: HoldfastError | undefined;

  /** Starts the first worker; rejects as open() does (a refusal's own error, or a crash after retries). */
  static async start(options: ResolvedOptions, testHooks: boolean): Promise<Supervisor> {
    const stats = new SharedArrayBuffer(STAT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
    const init: SpawnInit = { options, stats, lockToken: randomUUID(), testHooks, stickyFaults: [] };
    const policy = new RestartPolicy();
    const first = await spawnFirstWorker({ ...init, restart: undefined }, policy);
    return new Supervisor(init, policy, first);
  }

  private constructor(init: SpawnInit, policy: RestartPolicy, first: SpawnedWorker) {
    const options = init.options;
    this.#init = init;
    this.stats = new Float64Array(init.stats);
    this.#policy = policy;
    this.#outbox = new Outbox(() => this.stats[Stat.safeBelow]!);
    this.ready = first.ready;
    if (options.durability === 'journal') {
      const cipher = first.ready.cacheKey ? new CacheCipher(Buffer.from(first.ready.cacheKey)) : undefined;
      this.intake = new IntakeLog(options.cacheDir, first.ready.epoch, cipher, (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? err.message;
        this.#host.tell((host) => host.error(new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `intake log write failed (${code}): publish() refuses readings until it can write them`, { cause: err })));
      });
    }
    this.#losses = new WorkerLosses(this.#outbox, this.stats, this.intake !== undefined);
    this.#watch = new WorkerWatch(this.stats, () => this.#phase === 'running', () => void this.#worker.terminate());
    this.#shutdown = new Shutdown(options.closeTimeoutMs, {
      terminate: () => this.#worker.terminate(),
      unsaved: () => this.#losses.unsaved(),
      lastError: () => this.#watch.lastError,
    });
    this.#attach(first);
  }

  /** Connects the facade; what it is told is held until release() (supervisor-host.ts). */
  attach(host: SupervisorHost): void {
    this.#host.attach(host);
  }

  /** open() calls this once the app can have attached its listeners. */
  release(): void {
    this.#host.release();
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** Readings lost with dead workers since open() (each crash also says which, in 'worker-restart'). */
  get lostInWorkerCrashes(): number {
    return this.#losses.count;
  }

  /** Their seq ranges, the newest 64. */
  get lostInWorkerCrashesRanges(): SeqRange[] {
    return this.#losses.ranges;
  }

  /** Set once the worker could not be restarted: publish() and requests throw it. */
  get failure(): HoldfastError | undefined {
    return this.#failure;
  }

  /** Readings waiting here for a worker (counted in stats().memoryQueued). */
  get queuedReadings(): number {
    return this.#outbox.waitingReadings;
  }

  /** Posts to the worker, or keeps the message for the next one while it restarts. */
  post(msg: ToWorker, transfer?: ArrayBuffer[]): void {
    if (this.#phase !== 'failed' && this.#phase !== 'closed') this.#outbox.post(msg, transfer);
  }

  /** Sends a request and resolves with the worker's reply; sent again to a replacement worker. */
  request<T = void>(build: (id: number) => Request): Promise<T> {
    if (this.#phase === 'closed') return Promise.reject(new HoldfastError(ErrorCodes.CLOSED, 'the client is closed'));
    if (this.#failure) return Promise.reject(this.#failure);
    return this.#outbox.request<T>(build);
  }

  /** Test builds: the worker dies as asked (test-hooks.ts). crash-at-seq and slow-restart also arm every replacement. */
  injectFault(fault: TestFault): void {
    if (isSticky(fault)) this.#init.stickyFaults.push(fault);
    if (this.#phase === 'running') this.#port.postMessage({ type: 'testFault', fault } satisfies ToWorker);
  }

  // ── a worker's life ─────────────────────────────────────────────────────────────────────────

  /** Makes a started worker the current one; only the current worker is heard. */
  #attach({ worker, port, early }: SpawnedWorker): void {
    this.#worker = worker;
    this.#port = port;
    this.#watch.reset();
    this.#policy.ready(this.stats[Stat.delivered]!, this.stats[Stat.safeBelow]!);
    port.on('message', (msg: FromWorker) => {
      if (worker === this.#worker) this.#onMessage(msg);
    });
    worker.on('error', (err) => {
      this.#watch.errored(err.message);
    });
    worker.on('exit', (code) => {
      if (worker === this.#worker) this.#onExit(code);
    });
    for (const msg of early) this.#onMessage(msg);
    this.#outbox.open(port);
  }

  #onMessage(msg: FromWorker): void {
    if (msg.type === 'reply') return this.#outbox.settle(msg);
    if (msg.type === 'ready') return;
    if (msg.type === 'fatal') {
      // The worker blocks after saying why; ending it from here is the safe way (worker/fatal.ts).
      this.#watch.errored(msg.cause);
      void this.#worker.terminate();
      return;
    }
    this.#host.tell((host) => host.message(msg));
  }

  #onExit(code: number): void {
    // What the worker said just before it died (a reply, a dead letter) still counts.
    for (let m = receiveMessageOnPort(this.#port); m; m = receiveMessageOnPort(this.#port)) this.#onMessage(m.message as FromWorker);
    this.#port.close();
    this.#outbox.detach();
    if (this.#phase === 'closing') return this.#shutdown.workerExited();
    if (this.#phase !== 'running') return;
    const cause = this.#watch.cause(code);
    const lost = this.#losses.died();
    this.#restarts++;
    const poison = this.#policy.died(this.stats[Stat.delivered]!, this.stats[Stat.safeBelow]!, this.stats[Stat.workingSeq]!, cause);
    clearLiveSlots(this.stats);
    // Every seq of this run is above its first epoch's base: what a log holds at or below it is an
    // earlier run's, left to replay even before this run posted anything (lastPosted is then 0).
    const replayThrough = Math.max(this.#outbox.lastPosted, this.ready.epoch * EPOCH_SPAN);
    const restart: RestartInit = { replayThrough, intakeBefore: this.intake?.rotate(), poison };
    this.#phase = 'restarting';
    // A flush() that covers lost readings must not resolve as if they were safe.
    const firstLost = lost.ranges[0]?.[0];
    if (firstLost !== undefined) this.#outbox.rejectFlushes(firstLost, flushLostError(lost));
    this.#host.crashed(crashedError(cause, lost));
    this.#scheduleRestart(restart, cause, lost);
  }

  /** Announces the next try (each one: the first after a crash, and after each failed start) and schedules it. */
  #scheduleRestart(restart: RestartInit, cause: string, lost: LostReadings): void {
    if (!this.#policy.shouldRetry) return this.#fail(cause);
    const event = { attempt: this.#policy.attempt, cause, lost, ...(restart.poison ? { poison: restart.poison } : {}) };
    this.#host.tell((host) => host.event('worker-restart', event));
    this.#restartTimer = setTimeout(() => void this.#restart(restart), this.#policy.backoffMs);
  }

  async #restart(restart: RestartInit): Promise<void> {
    this.#restartTimer = undefined;
    startAfter(this.stats, this.#outbox.lastPosted);
    let spawned: SpawnedWorker;
    this.#spawning = true;
    try {
      spawned = await spawnWorker({ ...this.#init, restart });
    } catch (err) {
      const cause = err instanceof Error ? err.message : String(err);
      // close() gave up waiting: the lock stayed this client's until the start settled.
      if (this.#phase !== 'restarting') return this.#releaseLock();
      const poison = this.#policy.died(0, 0, this.stats[Stat.workingSeq]!, cause);
      return this.#scheduleRestart({ ...restart, poison: poison ?? restart.poison }, cause, { count: 0, ranges: [] });
    } finally {
      this.#spawning = false;
    }
    if (this.#phase !== 'restarting') {
      // close() gave up waiting for it; it holds the lock with this client's token.
      void spawned.worker.terminate().then(() => this.#releaseLock());
      return;
    }
    this.#phase = 'running';
    this.#attach(spawned);
    // The outbox has sent the replacement what waited.
    this.#host.resumed(spawned.ready, STATES[this.stats[Stat.state]!] ?? 'direct');
    this.#shutdown.restartSettled();
  }

  /** Lets the cacheDir lock go: no worker of this client may still use the cache. */
  #releaseLock(): void {
    releaseCacheLock(this.#init.options.cacheDir, this.#init.lockToken);
  }

  #fail(cause: string): void {
    // What waited here for a worker is lost too (journal mode: the intake log has it, for the next open()).
    const lost = this.#losses.dropWaiting();
    const attempts = this.#policy.attempt - 1;
    const failure = failedError(cause, attempts, lost);
    this.#failure = failure;
    this.#phase = 'failed';
    this.#outbox.rejectAll(failure);
    this.intake?.close();
    this.#releaseLock();
    this.#shutdown.restartSettled();
    this.#host.failed(failure, { attempts, cause, lost });
  }

  // ── close ───────────────────────────────────────────────────────────────────────────────────

  /**
   * Spills what is pending, disconnects and stops the worker, within closeTimeoutMs + 2 s. Resolves
   * only if every accepted reading is safe; otherwise rejects naming what was lost (close-worker.ts).
   */
  async close(): Promise<void> {
    if (this.#phase === 'closed') return;
    const deadline = this.#shutdown.deadline();
    try {
      if (this.#phase === 'restarting') await this.#shutdown.untilRestarted(deadline);
      if (this.#phase === 'failed') return this.#shutdown.afterFailure(this.#failure);
      if (this.#phase === 'restarting') {
        clearTimeout(this.#restartTimer);
        throw this.#shutdown.restartTimedOut(this.#losses.waiting());
      }
      this.#phase = 'closing';
      await this.#shutdown.closeWorker(this.request((id) => ({ type: 'close', id })), deadline);
    } finally {
      this.#phase = 'closed';
      this.#watch.stop();
      // A replacement still starting has the cache open: #restart lets the lock go once it is stopped,
      // so no other client opens the cache while this one's worker may still use it.
      if (!this.#spawning) this.#releaseLock();
      this.#outbox.rejectAll(new HoldfastError(ErrorCodes.CLOSED, 'the client closed before this request finished'));
      this.#host.tell((host) => host.state('closed'));
    }
  }
}
