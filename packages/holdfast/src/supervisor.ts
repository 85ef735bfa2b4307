/**
 * The worker is never a single point of failure. The supervisor owns the worker thread: it starts it,
 * posts to it, and when it dies (an uncaught exception, process.exit, its heap limit, a blocked event
 * loop) starts another on the same cache while publish() keeps accepting:
 *
 * - What the facade posts meanwhile waits here and goes to the new worker once it is ready; requests
 *   the dead worker never answered are sent again (subscriptions too).
 * - What died with the worker is counted from shared memory: every seq posted to it from
 *   Stat.safeBelow on was only in its memory. Journal mode keeps those in the intake log, and the new
 *   worker replays them (only those: see RestartInit), so it loses only what the log could not take.
 *   Each crash is reported with its seq ranges in a 'worker-restart' event and in stats().
 * - A record the worker keeps dying on is dead-lettered by the next worker (restart-policy.ts).
 * - After several failed tries in a row the client is 'failed' (HOLDFAST_WORKER_FAILED).
 */
import { randomUUID } from 'node:crypto';
import { receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { deserializeError, ErrorCodes, HoldfastError } from './errors.js';
import { IntakeLog } from './intake-log.js';
import type { ResolvedOptions } from './options.js';
import { Stat, STATES, STAT_SLOTS, type ClientState, type FromWorker, type RestartInit, type TestFault, type ToWorker, type WorkerReady } from './protocol.js';
import { RestartPolicy } from './restart-policy.js';
import { describeLost, SeqRanges, type LostReadings } from './seq-ranges.js';
import { CacheCipher } from './worker/cipher.js';
import { releaseCacheLock } from './worker/cache-lock.js';
import { spawnWorker, StartFailure, type SpawnedWorker } from './worker-spawn.js';

/** Time the worker gets beyond closeTimeoutMs before it is terminated. */
const CLOSE_GRACE_MS = 2000;
/** Heartbeat checks (one a second) that find the worker's counter unchanged before it counts as hung. */
const HANG_CHECKS = 15;

export type SupervisionEventName = 'worker-restart' | 'worker-failed';

/** The facade side of the supervisor: it hears what the worker says and what supervision decides. */
export interface SupervisorHost {
  /** Every worker message but replies (settled here) and ready. */
  message(msg: FromWorker): void;
  state(state: ClientState): void;
  event(name: SupervisionEventName, data: Record<string, unknown>): void;
  error(err: HoldfastError): void;
}

interface Request {
  msg: ToWorker & { id: number };
  resolve: (value: unknown) => void;
  reject: (err: HoldfastError) => void;
  /** The worker it was posted to (0 while it waits for one). */
  generation: number;
}

type Phase = 'running' | 'restarting' | 'failed' | 'closing' | 'closed';

export class Supervisor {
  readonly stats: Float64Array;
  /** The first worker's ready message (epoch, quarantine, journal key). */
  readonly ready: WorkerReady;
  /** Journal mode's intake log, written by publish() on the app thread. */
  readonly intake: IntakeLog | undefined;
  readonly #o: ResolvedOptions;
  readonly #statsBuffer: SharedArrayBuffer;
  readonly #lockToken: string;
  readonly #testHooks: boolean;
  readonly #stickyFaults: TestFault[] = [];
  #host: SupervisorHost | undefined;
  readonly #early: FromWorker[] = [];

  #phase: Phase = 'running';
  #worker!: Worker;
  #port!: MessagePort;
  #generation = 0;
  #lastError: string | undefined;
  #hung = false;
  #onClosingExit: (() => void) | undefined;
  #restartWaiters: Array<() => void> = [];
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #watchdog: NodeJS.Timeout;
  #lastBeat = -1;
  #stalledChecks = 0;

  /** Posts that wait for a worker (while one restarts), with their transfer lists. */
  readonly #queue: Array<{ msg: ToWorker; transfer: ArrayBuffer[] | undefined }> = [];
  #queuedReadings = 0;
  readonly #pending = new Map<number, Request>();
  #nextRequestId = 1;
  /** The app's subscriptions, sent again to every new worker. */
  readonly #subscriptions = new Map<string, ToWorker>();
  /** Seqs posted to the current worker that may not be safe yet. */
  readonly #posted = new SeqRanges();
  #lastPosted = 0;

  readonly #policy: RestartPolicy;
  #restarts = 0;
  #lostCount = 0;
  #failure: HoldfastError | undefined;

  /** Starts the first worker; rejects as open() does (a refusal's own error, or a crash after retries). */
  static async start(options: ResolvedOptions, testHooks: boolean): Promise<Supervisor> {
    const statsBuffer = new SharedArrayBuffer(STAT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
    const lockToken = randomUUID();
    const policy = new RestartPolicy();
    const stats = new Float64Array(statsBuffer);
    stats[Stat.safeBelow] = 1;
    let poison: RestartInit['poison'];
    for (;;) {
      try {
        const restart = poison && { replayThrough: Infinity, intakeBefore: undefined, poison };
        const spawned = await spawnWorker({ options, stats: statsBuffer, lockToken, testHooks, stickyFaults: [], restart });
        return new Supervisor(options, statsBuffer, lockToken, testHooks, policy, spawned);
      } catch (err) {
        if (!(err instanceof StartFailure)) throw err;
        // Only a crash at a record (one it decodes at start) is worth another try: the poison rule can
        // take that record out of the way. A refusal or any other crash is the answer to open().
        const workingSeq = stats[Stat.workingSeq]!;
        if (err.refused || workingSeq === 0) {
          releaseCacheLock(options.cacheDir, lockToken);
          throw err.error;
        }
        poison = policy.died(0, 0, workingSeq, err.message) ?? poison;
        if (!policy.shouldRetry) {
          releaseCacheLock(options.cacheDir, lockToken);
          throw new HoldfastError(ErrorCodes.WORKER_FAILED, `the holdfast worker failed to start ${policy.attempt} times in a row: ${err.message}`, { cause: err.error });
        }
        stats[Stat.workingSeq] = 0;
        await new Promise((resolve) => setTimeout(resolve, policy.backoffMs));
      }
    }
  }

  private constructor(options: ResolvedOptions, statsBuffer: SharedArrayBuffer, lockToken: string, testHooks: boolean, policy: RestartPolicy, first: SpawnedWorker) {
    this.#o = options;
    this.#statsBuffer = statsBuffer;
    this.stats = new Float64Array(statsBuffer);
    this.#lockToken = lockToken;
    this.#testHooks = testHooks;
    this.#policy = policy;
    this.ready = first.ready;
    if (options.durability === 'journal') {
      const cipher = first.ready.cacheKey ? new CacheCipher(Buffer.from(first.ready.cacheKey)) : undefined;
      const cacheWritable = (): boolean => this.stats[Stat.cacheWritable] !== 0;
      this.intake = new IntakeLog(options.cacheDir, first.ready.epoch, cipher, cacheWritable, (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? err.message;
        this.#host?.error(new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `intake log write failed (${code}): readings are durable only once the worker commits them`, { cause: err }));
      });
    }
    this.#attach(first);
    this.#watchdog = setInterval(() => this.#checkHeartbeat(), 1000).unref();
  }

  /** Connects the facade; worker messages that arrived before it are handed over now. */
  attach(host: SupervisorHost): void {
    this.#host = host;
    for (const msg of this.#early.splice(0)) host.message(msg);
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** Readings lost with dead workers since open() (each crash also says which, in 'worker-restart'). */
  get lostInWorkerCrashes(): number {
    return this.#lostCount;
  }

  /** Set once the worker could not be restarted: publish() and requests throw it. */
  get failure(): HoldfastError | undefined {
    return this.#failure;
  }

  /** Readings waiting here for a worker (counted in stats().memoryQueued). */
  get queuedReadings(): number {
    return this.#queuedReadings;
  }

  /** Posts to the worker, or keeps the message for the next one while it restarts. */
  post(msg: ToWorker, transfer?: ArrayBuffer[]): void {
    if (msg.type === 'subscribe') this.#subscriptions.set(msg.filter, msg);
    else if (msg.type === 'unsubscribe') this.#subscriptions.delete(msg.filter);
    if (this.#phase === 'running' || this.#phase === 'closing') return this.#postNow(msg, transfer);
    if (this.#phase !== 'restarting') return;
    // A new worker gets every subscription anyway.
    if (msg.type === 'subscribe' || msg.type === 'unsubscribe') return;
    if (msg.type === 'publish') {
      this.#queuedReadings += msg.topics.length;
      // The facade reuses a batch's arrays once it is posted; a kept batch needs its own.
      const { topics, payloads, priorities, flags, timestamps } = msg;
      msg = { ...msg, topics: [...topics], payloads: [...payloads], priorities: [...priorities], flags: [...flags], timestamps: [...timestamps] };
    }
    this.#queue.push({ msg, transfer: transfer && [...transfer] });
  }

  #postNow(msg: ToWorker, transfer?: ArrayBuffer[]): void {
    if (msg.type === 'publish') {
      const last = msg.firstSeq + msg.topics.length - 1;
      this.#posted.dropBelow(this.stats[Stat.safeBelow]!);
      this.#posted.add(msg.firstSeq, last);
      this.#lastPosted = last;
    }
    this.#port.postMessage(msg, transfer);
  }

  /** Sends a request and resolves with the worker's reply; sent again to a replacement worker. */
  request<T = void>(build: (id: number) => ToWorker & { id: number }): Promise<T> {
    if (this.#phase === 'closed') return Promise.reject(new HoldfastError(ErrorCodes.CLOSED, 'the client is closed'));
    if (this.#failure) return Promise.reject(this.#failure);
    const msg = build(this.#nextRequestId++);
    return new Promise<T>((resolve, reject) => {
      const request: Request = { msg, resolve: resolve as (value: unknown) => void, reject, generation: 0 };
      this.#pending.set(msg.id, request);
      if (this.#phase === 'running' || this.#phase === 'closing') request.generation = this.#generation;
      this.post(msg);
    });
  }

  /** Test builds: the worker dies as asked (test-hooks.ts). crash-at-seq also arms every replacement. */
  injectFault(fault: TestFault): void {
    if (fault.kind === 'crash-at-seq') this.#stickyFaults.push(fault);
    if (this.#phase === 'running') this.#port.postMessage({ type: 'testFault', fault } satisfies ToWorker);
  }

  // ── a worker's life ─────────────────────────────────────────────────────────────────────────

  #attach({ worker, port, ready }: SpawnedWorker): void {
    this.#worker = worker;
    this.#port = port;
    this.#generation++;
    this.#lastError = undefined;
    this.#hung = false;
    this.#stalledChecks = 0;
    this.#posted.clear();
    this.#policy.ready(this.stats[Stat.delivered]!, this.stats[Stat.safeBelow]!);
    const generation = this.#generation;
    port.on('message', (msg: FromWorker) => {
      if (generation === this.#generation) this.#onMessage(msg);
    });
    worker.on('error', (err) => {
      this.#lastError = err.message;
    });
    worker.on('exit', (code) => {
      if (generation === this.#generation) this.#onExit(code);
    });
    if (generation > 1) this.#resume(ready);
  }

  #onMessage(msg: FromWorker): void {
    if (msg.type === 'reply') {
      const request = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (!request) return;
      if (msg.error) request.reject(deserializeError(msg.error));
      else request.resolve(msg.value);
      return;
    }
    if (msg.type === 'ready') return;
    if (msg.type === 'fatal') {
      // The worker blocks after saying why; ending it from here is the safe way (worker/fatal.ts).
      this.#lastError = msg.cause;
      void this.#worker.terminate();
      return;
    }
    if (this.#host) this.#host.message(msg);
    else this.#early.push(msg);
  }

  /** The blocked-event-loop check: the worker counts Stat.heartbeat up every second. */
  #checkHeartbeat(): void {
    if (this.#phase !== 'running') return;
    const beat = this.stats[Stat.heartbeat]!;
    this.#stalledChecks = beat === this.#lastBeat ? this.#stalledChecks + 1 : 0;
    this.#lastBeat = beat;
    if (this.#stalledChecks < HANG_CHECKS || this.#hung) return;
    this.#hung = true;
    void this.#worker.terminate();
  }

  #onExit(code: number): void {
    // What the worker said just before it died (a reply, a dead letter) still counts.
    for (let m = receiveMessageOnPort(this.#port); m; m = receiveMessageOnPort(this.#port)) this.#onMessage(m.message as FromWorker);
    this.#port.close();
    if (this.#phase === 'closing') return this.#onClosingExit?.();
    if (this.#phase !== 'running') return;
    const cause = this.#hung ? `its event loop was blocked for ${HANG_CHECKS} s, so it was terminated` : (this.#lastError ?? `it exited with code ${code}`);
    const lost = this.#unsaved();
    this.#restarts++;
    this.#lostCount += lost.count;
    const poison = this.#policy.died(this.stats[Stat.delivered]!, this.stats[Stat.safeBelow]!, this.stats[Stat.workingSeq]!, cause);
    const restart: RestartInit = { replayThrough: this.#lastPosted, intakeBefore: this.intake?.rotate(), poison };
    this.#phase = 'restarting';
    this.#rejectLostFlushes(lost);
    this.#host?.state('restarting');
    this.#host?.error(
      new HoldfastError(ErrorCodes.WORKER_CRASHED, `the holdfast worker died (${cause}); restarting it on the same cache. Lost: ${describeLost(lost)}`, {
        details: { cause, lost },
      }),
    );
    this.#scheduleRestart(restart, cause, lost);
  }

  /**
   * What a worker that died now took with it: seqs posted to it from Stat.safeBelow on (journal mode:
   * only those the intake log does not hold either).
   */
  #unsaved(): LostReadings {
    return this.#posted.from(this.stats[Stat.safeBelow]!, this.intake?.unlogged);
  }

  /** A flush() that covers lost readings must not resolve as if they were safe. */
  #rejectLostFlushes(lost: LostReadings): void {
    const firstLost = lost.ranges[0]?.[0];
    if (firstLost === undefined) return;
    for (const [id, request] of this.#pending) {
      if (request.msg.type !== 'flush' || request.msg.upTo < firstLost) continue;
      this.#pending.delete(id);
      request.reject(new HoldfastError(ErrorCodes.WORKER_CRASHED, `flush(): the worker died with ${describeLost(lost)} only in its memory`, { details: { lost } }));
    }
  }

  /** Announces the next try (each one: the first after a crash, and after each failed start) and schedules it. */
  #scheduleRestart(restart: RestartInit, cause: string, lost: LostReadings): void {
    if (!this.#policy.shouldRetry) return this.#fail(cause);
    this.#host?.event('worker-restart', { attempt: this.#policy.attempt, cause, lost, ...(restart.poison ? { poison: restart.poison } : {}) });
    this.#restartTimer = setTimeout(() => void this.#restart(restart), this.#policy.backoffMs);
  }

  async #restart(restart: RestartInit): Promise<void> {
    this.#restartTimer = undefined;
    const s = this.stats;
    // The dead worker's live values; counters (delivered, spilled, ...) carry on.
    for (const slot of [Stat.connected, Stat.inflight, Stat.memoryQueued, Stat.memoryBytes, Stat.workingSeq]) s[slot] = 0;
    s[Stat.receivedThrough] = this.#lastPosted;
    s[Stat.safeBelow] = this.#lastPosted + 1;
    let spawned: SpawnedWorker;
    try {
      const init = { options: this.#o, stats: this.#statsBuffer, lockToken: this.#lockToken, testHooks: this.#testHooks, stickyFaults: this.#stickyFaults, restart };
      spawned = await spawnWorker(init);
    } catch (err) {
      const cause = err instanceof Error ? err.message : String(err);
      if (this.#phase !== 'restarting') return;
      const poison = this.#policy.died(0, 0, s[Stat.workingSeq]!, cause);
      return this.#scheduleRestart({ ...restart, poison: poison ?? restart.poison }, cause, new SeqRanges().from(0));
    }
    if (this.#phase !== 'restarting') {
      // close() gave up waiting for it; it holds the lock with this client's token.
      void spawned.worker.terminate().then(() => releaseCacheLock(this.#o.cacheDir, this.#lockToken));
      return;
    }
    this.#phase = 'running';
    this.#attach(spawned);
  }

  /** A replacement is ready: it gets the subscriptions, the unanswered requests, then what waited. */
  #resume(ready: WorkerReady): void {
    this.#host?.message({ type: 'epoch', epoch: ready.epoch });
    if (ready.quarantined) this.#host?.message({ type: 'event', name: 'quarantine', data: { ...ready.quarantined } });
    for (const msg of this.#subscriptions.values()) this.#postNow(msg);
    for (const request of this.#pending.values()) {
      if (request.generation === 0) continue;
      request.generation = this.#generation;
      this.#postNow(request.msg);
    }
    for (const { msg, transfer } of this.#queue.splice(0)) {
      if ('id' in msg) {
        const request = this.#pending.get(msg.id);
        if (!request) continue;
        request.generation = this.#generation;
      }
      this.#postNow(msg, transfer);
    }
    this.#queuedReadings = 0;
    this.#host?.state(STATES[this.stats[Stat.state]!] ?? 'direct');
    for (const wake of this.#restartWaiters.splice(0)) wake();
  }

  #fail(cause: string): void {
    // What waited here for a worker is lost too (journal mode: unless the intake log has it).
    const waiting = new SeqRanges();
    for (const { msg } of this.#queue.splice(0)) if (msg.type === 'publish') waiting.add(msg.firstSeq, msg.firstSeq + msg.topics.length - 1);
    this.#queuedReadings = 0;
    const lost = waiting.from(0, this.intake?.unlogged);
    this.#lostCount += lost.count;
    const attempts = this.#policy.attempt - 1;
    this.#failure = new HoldfastError(ErrorCodes.WORKER_FAILED, `the holdfast worker could not be restarted (${attempts} tries in a row failed; last: ${cause}). Lost: ${describeLost(lost)}`, {
      details: { cause, attempts, lost },
    });
    this.#phase = 'failed';
    for (const request of this.#pending.values()) request.reject(this.#failure);
    this.#pending.clear();
    this.intake?.close();
    releaseCacheLock(this.#o.cacheDir, this.#lockToken);
    for (const wake of this.#restartWaiters.splice(0)) wake();
    this.#host?.state('failed');
    this.#host?.event('worker-failed', { attempts, cause, lost });
    this.#host?.error(this.#failure);
  }

  // ── close ───────────────────────────────────────────────────────────────────────────────────

  /**
   * Spills what is pending, disconnects and stops the worker, within closeTimeoutMs + 2 s. Resolves
   * only if every accepted reading is safe (delivered, or in the cache or the intake log); otherwise
   * rejects naming what was lost: HOLDFAST_TIMEOUT when the worker had to be terminated,
   * HOLDFAST_CACHE_WRITE_FAILED when the final spill could not be written (a full disk), or the
   * worker's own error.
   */
  async close(): Promise<void> {
    if (this.#phase === 'closed') return;
    const deadline = performance.now() + this.#o.closeTimeoutMs + CLOSE_GRACE_MS;
    try {
      if (this.#phase === 'restarting') await this.#untilRestarted(deadline);
      if (this.#phase === 'failed') {
        if ((this.#failure?.details?.lost as LostReadings | undefined)?.count) throw this.#failure!;
        return;
      }
      if (this.#phase === 'restarting') {
        clearTimeout(this.#restartTimer);
        throw this.#lostAtClose(ErrorCodes.TIMEOUT, 'close() timed out while the worker was restarting', this.#queuedLost());
      }
      await this.#closeWorker(deadline);
    } finally {
      this.#phase = 'closed';
      clearInterval(this.#watchdog);
      releaseCacheLock(this.#o.cacheDir, this.#lockToken);
      for (const request of this.#pending.values()) request.reject(new HoldfastError(ErrorCodes.CLOSED, 'the client closed before this request finished'));
      this.#pending.clear();
      this.#host?.state('closed');
    }
  }

  async #closeWorker(deadline: number): Promise<void> {
    this.#phase = 'closing';
    const exited = new Promise<'exit'>((resolve) => (this.#onClosingExit = () => resolve('exit')));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - performance.now()))));
    const reply = this.request((id) => ({ type: 'close', id })).then(
      () => ({ err: undefined }),
      (err: HoldfastError) => ({ err }),
    );
    try {
      let first = await Promise.race([reply, exited, timeout]);
      // 'exit' can overtake the reply, which is then read from the port as the exit is handled.
      if (first === 'exit') first = await Promise.race([reply, new Promise<'exit'>((resolve) => setImmediate(() => resolve('exit')))]);
      if (first === 'timeout') {
        await this.#worker.terminate();
        throw this.#lostAtClose(ErrorCodes.TIMEOUT, `close() timed out after ${this.#o.closeTimeoutMs + CLOSE_GRACE_MS} ms and terminated the worker`, this.#unsaved());
      }
      if (first === 'exit') throw this.#lostAtClose(ErrorCodes.WORKER_CRASHED, `the holdfast worker died during close() (${this.#lastError ?? 'it exited'})`, this.#unsaved());
      if (first.err) throw first.err;
      if ((await Promise.race([exited, timeout])) === 'timeout') await this.#worker.terminate();
      const lost = this.#unsaved();
      if (lost.count > 0) throw this.#lostAtClose(ErrorCodes.CACHE_WRITE_FAILED, 'close() could not write every pending reading to the cache', lost);
    } finally {
      clearTimeout(timer);
    }
  }

  #lostAtClose(code: typeof ErrorCodes.TIMEOUT | typeof ErrorCodes.WORKER_CRASHED | typeof ErrorCodes.CACHE_WRITE_FAILED, what: string, lost: LostReadings): HoldfastError {
    const saved = lost.count === 0 ? 'nothing was lost: every accepted reading is delivered, in the cache, or in the intake log' : `lost: ${describeLost(lost)}`;
    return new HoldfastError(code, `${what}; ${saved}`, { details: { lost } });
  }

  #queuedLost(): LostReadings {
    const waiting = new SeqRanges();
    for (const { msg } of this.#queue) if (msg.type === 'publish') waiting.add(msg.firstSeq, msg.firstSeq + msg.topics.length - 1);
    return waiting.from(0, this.intake?.unlogged);
  }

  #untilRestarted(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
      this.#restartWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
