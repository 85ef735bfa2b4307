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
import { ErrorCodes, HoldfastError } from './errors.js';
import { IntakeLog } from './intake-log.js';
import type { ResolvedOptions } from './options.js';
import { closeWorker, lostAtClose } from './close-worker.js';
import { Outbox, type Request } from './outbox.js';
import { OFFLINE_CAUSES, Stat, STATES, STAT_SLOTS, type ClientState, type FromWorker, type RestartInit, type TestFault, type ToWorker, type WorkerReady } from './protocol.js';
import { RestartPolicy } from './restart-policy.js';
import { describeLost, type LostReadings, type SeqRanges } from './seq-ranges.js';
import { CacheCipher } from './worker/cipher.js';
import { monotonicMs } from './worker/clock.js';
import { releaseCacheLock } from './worker/cache-lock.js';
import { spawnFirstWorker, spawnWorker, type SpawnedWorker } from './worker-spawn.js';

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
  /** What the facade is told until release(), in order (see attach()). */
  #held: Array<(host: SupervisorHost) => void> | undefined = [];

  #phase: Phase = 'running';
  #worker!: Worker;
  #port!: MessagePort;
  #generation = 0;
  #lastError: string | undefined;
  #hung = false;
  #onClosingExit: (() => void) | undefined;
  #restartWaiters: Array<() => void> = [];
  #restartTimer: NodeJS.Timeout | undefined;
  /** A replacement worker is starting (it may have the cache open already). */
  #spawning = false;
  readonly #watchdog: NodeJS.Timeout;
  #lastBeat = -1;
  #stalledChecks = 0;

  readonly #outbox: Outbox;

  readonly #policy: RestartPolicy;
  #restarts = 0;
  #lostCount = 0;
  #failure: HoldfastError | undefined;

  /** Starts the first worker; rejects as open() does (a refusal's own error, or a crash after retries). */
  static async start(options: ResolvedOptions, testHooks: boolean): Promise<Supervisor> {
    const statsBuffer = new SharedArrayBuffer(STAT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
    const lockToken = randomUUID();
    const policy = new RestartPolicy();
    const first = await spawnFirstWorker({ options, stats: statsBuffer, lockToken, testHooks, stickyFaults: [], restart: undefined }, policy);
    return new Supervisor(options, statsBuffer, lockToken, testHooks, policy, first);
  }

  private constructor(options: ResolvedOptions, statsBuffer: SharedArrayBuffer, lockToken: string, testHooks: boolean, policy: RestartPolicy, first: SpawnedWorker) {
    this.#o = options;
    this.#statsBuffer = statsBuffer;
    this.stats = new Float64Array(statsBuffer);
    this.#lockToken = lockToken;
    this.#testHooks = testHooks;
    this.#policy = policy;
    this.#outbox = new Outbox(() => this.stats[Stat.safeBelow]!);
    this.ready = first.ready;
    if (options.durability === 'journal') {
      const cipher = first.ready.cacheKey ? new CacheCipher(Buffer.from(first.ready.cacheKey)) : undefined;
      this.intake = new IntakeLog(options.cacheDir, first.ready.epoch, cipher, (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? err.message;
        this.#tell((host) => host.error(new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `intake log write failed (${code}): publish() refuses readings until it can write them`, { cause: err })));
      });
    }
    this.#attach(first);
    this.#watchdog = setInterval(() => this.#checkHeartbeat(), 1000).unref();
  }

  /**
   * Connects the facade. What the worker says and supervision decides is held until release(), which
   * open() calls after the app's continuation of `await open()`, where it attaches its listeners (the
   * start's 'draining' and 'drain-start' come before 'ready'), and then handed over in order.
   */
  attach(host: SupervisorHost): void {
    this.#host = host;
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const tell of held) tell(this.#host!);
  }

  #tell(tell: (host: SupervisorHost) => void): void {
    if (this.#held) this.#held.push(tell);
    else if (this.#host) tell(this.#host);
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

  /** Test builds: the worker dies as asked (test-hooks.ts). crash-at-seq also arms every replacement. */
  injectFault(fault: TestFault): void {
    if (fault.kind === 'crash-at-seq') this.#stickyFaults.push(fault);
    if (this.#phase === 'running') this.#port.postMessage({ type: 'testFault', fault } satisfies ToWorker);
  }

  // ── a worker's life ─────────────────────────────────────────────────────────────────────────

  #attach({ worker, port, ready, early }: SpawnedWorker): void {
    this.#worker = worker;
    this.#port = port;
    this.#generation++;
    this.#lastError = undefined;
    this.#hung = false;
    this.#stalledChecks = 0;
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
    for (const msg of early) this.#onMessage(msg);
    this.#outbox.open(port);
    if (generation > 1) this.#resumed(ready);
  }

  #onMessage(msg: FromWorker): void {
    if (msg.type === 'reply') return this.#outbox.settle(msg);
    if (msg.type === 'ready') return;
    if (msg.type === 'fatal') {
      // The worker blocks after saying why; ending it from here is the safe way (worker/fatal.ts).
      this.#lastError = msg.cause;
      void this.#worker.terminate();
      return;
    }
    this.#tell((host) => host.message(msg));
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
    this.#outbox.detach();
    if (this.#phase === 'closing') return this.#onClosingExit?.();
    if (this.#phase !== 'running') return;
    const cause = this.#hung ? `its event loop was blocked for ${HANG_CHECKS} s, so it was terminated` : (this.#lastError ?? `it exited with code ${code}`);
    const lost = this.#unsaved();
    this.#restarts++;
    this.#lostCount += lost.count;
    const poison = this.#policy.died(this.stats[Stat.delivered]!, this.stats[Stat.safeBelow]!, this.stats[Stat.workingSeq]!, cause);
    this.#clearLiveSlots();
    const restart: RestartInit = { replayThrough: this.#outbox.lastPosted, intakeBefore: this.intake?.rotate(), poison };
    this.#phase = 'restarting';
    // A flush() that covers lost readings must not resolve as if they were safe.
    const firstLost = lost.ranges[0]?.[0];
    if (firstLost !== undefined) {
      this.#outbox.rejectFlushes(firstLost, new HoldfastError(ErrorCodes.WORKER_CRASHED, `flush(): the worker died with ${describeLost(lost)} only in its memory`, { details: { lost } }));
    }
    this.#tell((host) => host.state('restarting'));
    const crashed = new HoldfastError(ErrorCodes.WORKER_CRASHED, `the holdfast worker died (${cause}); restarting it on the same cache. Lost: ${describeLost(lost)}`, {
      details: { cause, lost },
    });
    this.#tell((host) => host.error(crashed));
    this.#scheduleRestart(restart, cause, lost);
  }

  /** What a worker that died now took with it: seqs posted to it from Stat.safeBelow on. */
  #unsaved(): LostReadings {
    return this.#lost(this.#outbox.posted, this.stats[Stat.safeBelow]!);
  }

  /**
   * The readings among `seqs` from `from` on, lost with a worker. None in journal mode: publish()
   * accepts only what the intake log took, and the next worker replays it.
   */
  #lost(seqs: SeqRanges, from: number): LostReadings {
    return this.intake ? { count: 0, ranges: [] } : seqs.from(from);
  }

  /** The dead worker's live values (its connection, what it had in flight and in memory) died with it. */
  #clearLiveSlots(): void {
    const s = this.stats;
    for (const slot of [Stat.connected, Stat.inflight, Stat.exchangeStartedMs, Stat.memoryQueued, Stat.memoryBytes, Stat.workingSeq]) s[slot] = 0;
    // Offline from now, unless it already was (the replacement carries the outage on: offline-watch.ts).
    if (s[Stat.offline] !== 1) {
      s[Stat.offlineSinceMs] = monotonicMs();
      s[Stat.offline] = 1;
    }
    s[Stat.offlineCause] = OFFLINE_CAUSES.indexOf('disconnected');
  }

  /** Announces the next try (each one: the first after a crash, and after each failed start) and schedules it. */
  #scheduleRestart(restart: RestartInit, cause: string, lost: LostReadings): void {
    if (!this.#policy.shouldRetry) return this.#fail(cause);
    const event = { attempt: this.#policy.attempt, cause, lost, ...(restart.poison ? { poison: restart.poison } : {}) };
    this.#tell((host) => host.event('worker-restart', event));
    this.#restartTimer = setTimeout(() => void this.#restart(restart), this.#policy.backoffMs);
  }

  async #restart(restart: RestartInit): Promise<void> {
    this.#restartTimer = undefined;
    const s = this.stats;
    // Counters (delivered, spilled, ...) carry on; the live values were cleared at the death.
    s[Stat.workingSeq] = 0;
    s[Stat.receivedThrough] = this.#outbox.lastPosted;
    s[Stat.safeBelow] = this.#outbox.lastPosted + 1;
    let spawned: SpawnedWorker;
    this.#spawning = true;
    try {
      const init = { options: this.#o, stats: this.#statsBuffer, lockToken: this.#lockToken, testHooks: this.#testHooks, stickyFaults: this.#stickyFaults, restart };
      spawned = await spawnWorker(init);
    } catch (err) {
      const cause = err instanceof Error ? err.message : String(err);
      // close() gave up waiting: the lock stayed this client's until the start settled.
      if (this.#phase !== 'restarting') return releaseCacheLock(this.#o.cacheDir, this.#lockToken);
      const poison = this.#policy.died(0, 0, s[Stat.workingSeq]!, cause);
      return this.#scheduleRestart({ ...restart, poison: poison ?? restart.poison }, cause, { count: 0, ranges: [] });
    } finally {
      this.#spawning = false;
    }
    if (this.#phase !== 'restarting') {
      // close() gave up waiting for it; it holds the lock with this client's token.
      void spawned.worker.terminate().then(() => releaseCacheLock(this.#o.cacheDir, this.#lockToken));
      return;
    }
    this.#phase = 'running';
    this.#attach(spawned);
  }

  /** A replacement is ready (the outbox has sent it what waited). */
  #resumed(ready: WorkerReady): void {
    // Its epoch is reserved and unused: the next one the facade's seqs move to.
    this.#tell((host) => host.message({ type: 'epoch', epoch: ready.epoch }));
    if (ready.quarantined) this.#tell((host) => host.message({ type: 'event', name: 'quarantine', data: { ...ready.quarantined } }));
    const state = STATES[this.stats[Stat.state]!] ?? 'direct';
    this.#tell((host) => host.state(state));
    for (const wake of this.#restartWaiters.splice(0)) wake();
  }

  #fail(cause: string): void {
    // What waited here for a worker is lost too (journal mode: the intake log has it, for the next open()).
    const lost = this.#lost(this.#outbox.discardWaiting(), 0);
    this.#lostCount += lost.count;
    const attempts = this.#policy.attempt - 1;
    const failure = new HoldfastError(ErrorCodes.WORKER_FAILED, `the holdfast worker could not be restarted (${attempts} tries in a row failed; last: ${cause}). Lost: ${describeLost(lost)}`, {
      details: { cause, attempts, lost },
    });
    this.#failure = failure;
    this.#phase = 'failed';
    this.#outbox.rejectAll(failure);
    this.intake?.close();
    releaseCacheLock(this.#o.cacheDir, this.#lockToken);
    for (const wake of this.#restartWaiters.splice(0)) wake();
    this.#tell((host) => {
      host.state('failed');
      host.event('worker-failed', { attempts, cause, lost });
      host.error(failure);
    });
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
        throw lostAtClose(ErrorCodes.TIMEOUT, 'close() timed out while the worker was restarting', this.#lost(this.#outbox.waitingSeqs(), 0));
      }
      await this.#closeWorker(deadline);
    } finally {
      this.#phase = 'closed';
      clearInterval(this.#watchdog);
      // A replacement still starting has the cache open: #restart lets the lock go once it is stopped,
      // so no other client opens the cache while this one's worker may still use it.
      if (!this.#spawning) releaseCacheLock(this.#o.cacheDir, this.#lockToken);
      this.#outbox.rejectAll(new HoldfastError(ErrorCodes.CLOSED, 'the client closed before this request finished'));
      this.#tell((host) => host.state('closed'));
    }
  }

  #closeWorker(deadline: number): Promise<void> {
    this.#phase = 'closing';
    const exited = new Promise<'exit'>((resolve) => (this.#onClosingExit = () => resolve('exit')));
    return closeWorker({
      reply: this.request((id) => ({ type: 'close', id })),
      exited,
      deadline,
      budgetMs: this.#o.closeTimeoutMs + CLOSE_GRACE_MS,
      terminate: () => this.#worker.terminate(),
      unsaved: () => this.#unsaved(),
      lastError: () => this.#lastError,
    });
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
