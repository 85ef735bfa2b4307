import { EventEmitter } from 'node:events';
import { deserializeError, ErrorCodes, HoldfastError } from './errors.js';
import type { HealthServer } from './health.js';
import type { ResolvedOptions } from './options.js';
import { FLAG_QOS2, FLAG_RETAIN, Stat, STATES, type ClientState, type DeadLetter, type FromWorker, type PublishBatch, type QuarantineInfo } from './protocol.js';
import type { IntakeLog } from './intake-log.js';
import type { SeqAllocator } from './seq.js';
import { readConnectivity, snapshotStats, type Connectivity, type HoldfastStats } from './stats.js';
import type { Request } from './outbox.js';
import type { SupervisionEventName, Supervisor, SupervisorHost } from './supervisor.js';
import { Subscriptions, validateFilter, type IncomingMessage, type MessageHandler } from './subscriptions.js';
import { DEFAULT_PRIORITY, validatePayload, validatePublishOptions, validateTopic, type PublishOptions } from './validate.js';

/** Post a batch early when it gets this big, so one tick of a tight loop cannot grow without bound. */
const MAX_BATCH_MESSAGES = 8192;
/**
 * Byte payloads are copied into arenas that travel to the worker whole (one transfer per arena, not one
 * ArrayBuffer per message, which costs ~10 µs each). A batch's arenas start small and double, so a
 * batch of one small message wastes at most ~1 KB and a big batch at most half its bytes.
 */
const FIRST_ARENA_BYTES = 1024;
const MAX_ARENA_BYTES = 1 << 20;

/**
 * The app-thread facade: validates, stamps a seq and batches. It never does network I/O, and disk I/O
 * only in journal mode (one append to the intake log per publish(), so a crash cannot lose it);
 * everything else happens in the worker, which the supervisor keeps alive.
 */
export class HoldfastClient extends EventEmitter {
  readonly #supervisor: Supervisor;
  readonly #stats: Float64Array;
  readonly #seqs: SeqAllocator;
  readonly #defaultQosFlag: number;
  /** Journal mode: the write-ahead intake log publish() appends to before it returns. */
  readonly #intake: IntakeLog | undefined;

  // The batch being filled this tick, column by column (see PublishBatch).
  #topics: string[] = [];
  #payloads: Array<string | Uint8Array> = [];
  #priorities: number[] = [];
  #flags: number[] = [];
  #timestamps: number[] = [];
  #transfer: ArrayBuffer[] = [];
  #arena: Uint8Array<ArrayBuffer> | undefined;
  #arenaUsed = 0;
  #firstSeq = 0;
  #postScheduled = false;

  #accepted = 0;
  #lastSeq = 0;
  #closing: Promise<void> | undefined;
  #closed = false;
  #state: ClientState = 'direct';
  #health: HealthServer | undefined;
  readonly #subscriptions = new Subscriptions((err, filter) => {
    const message = err instanceof Error ? err.message : String(err);
    this.#emitError(new HoldfastError(ErrorCodes.HANDLER_FAILED, `a handler for '${filter}' threw: ${message}`, { cause: err, details: { filter } }));
  });

  /**
   * Set when open() found the cache unreadable: it was renamed aside (never deleted; it may hold
   * undelivered readings) and the client started on a fresh cache. Also emitted as 'quarantine'.
   */
  readonly quarantined: QuarantineInfo | undefined;

  /** @internal Use open(). */
  constructor(supervisor: Supervisor, seqs: SeqAllocator, options: ResolvedOptions) {
    super();
    const { quarantined } = supervisor.ready;
    this.#intake = supervisor.intake;
    this.quarantined = quarantined;
    if (quarantined) {
      // Loud on purpose: the warning reaches stderr (the journal under systemd) even with no listener.
      process.emitWarning(`cache quarantined: moved to ${quarantined.movedTo} (${quarantined.reason}); started on a fresh cache`, {
        type: 'HoldfastWarning',
        code: ErrorCodes.CACHE_QUARANTINED,
      });
      setImmediate(() => this.emit('quarantine', quarantined));
    }
    this.#supervisor = supervisor;
    this.#stats = supervisor.stats;
    this.#seqs = seqs;
    this.#defaultQosFlag = options.qos === 2 ? FLAG_QOS2 : 0;
    this.#state = STATES[this.#stats[Stat.state] ?? 0] ?? 'direct';
    const host: SupervisorHost = {
      message: (msg) => this.#onMessage(msg),
      state: (state) => this.#setState(state),
      event: (name: SupervisionEventName, data) => this.emit(name, data),
      error: (err) => this.#emitError(err),
    };
    supervisor.attach(host);
  }

  /**
   * Accepts one message. Synchronous: validates, assigns the next seq and returns it. Keeps accepting
   * while a dead worker is replaced. Throws a HoldfastError for bad input, after close()
   * (HOLDFAST_CLOSED), or once the worker could not be restarted (HOLDFAST_WORKER_FAILED); nothing
   * already accepted is affected.
   */
  publish(topic: string, payload: string | Uint8Array, options?: PublishOptions): number {
    if (this.#closing) throw new HoldfastError(ErrorCodes.CLOSED, 'publish() after close(): the client accepts nothing more');
    if (this.#state === 'failed') throw this.#supervisor.failure!;
    validateTopic(topic);
    validatePayload(payload);
    let priority = DEFAULT_PRIORITY;
    let flags = this.#defaultQosFlag;
    if (options !== undefined) {
      validatePublishOptions(options);
      if (options.priority !== undefined) priority = options.priority;
      if (options.qos !== undefined) flags = options.qos === 2 ? FLAG_QOS2 : 0;
      if (options.retain === true) flags |= FLAG_RETAIN;
    }
    const seq = this.#seqs.next();
    const ts = Date.now();
    // Journal mode: written to the intake log before it is accepted, or not accepted at all.
    if (this.#intake && !this.#intake.append(seq, topic, payload, priority, flags, ts)) {
      this.#seqs.giveBack();
      throw new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `journal mode could not write the reading to its intake log (${this.#intake.lastFailure}): it was not accepted`, {
        details: { cause: this.#intake.lastFailure },
      });
    }
    const topics = this.#topics;
    if (topics.length === 0) {
      this.#firstSeq = seq;
      if (!this.#postScheduled) {
        this.#postScheduled = true;
        queueMicrotask(this.#postScheduledBatch);
      }
    }
    topics.push(topic);
    this.#payloads.push(typeof payload === 'string' ? payload : this.#copyIntoArena(payload));
    this.#priorities.push(priority);
    this.#flags.push(flags);
    this.#timestamps.push(ts);
    this.#accepted++;
    this.#lastSeq = seq;
    if (topics.length >= MAX_BATCH_MESSAGES) this.#postBatch();
    return seq;
  }

  /** Copies the caller's bytes (it may reuse its buffer at once) into the batch's current arena. */
  #copyIntoArena(payload: Uint8Array): Uint8Array {
    const size = payload.byteLength;
    let arena = this.#arena;
    if (arena === undefined || arena.byteLength - this.#arenaUsed < size) {
      if (size > MAX_ARENA_BYTES / 4) {
        const own = new Uint8Array(size);
        own.set(payload);
        this.#transfer.push(own.buffer);
        return own;
      }
      const capacity = Math.min(MAX_ARENA_BYTES, Math.max(FIRST_ARENA_BYTES, size, arena === undefined ? 0 : arena.byteLength * 2));
      arena = new Uint8Array(capacity);
      this.#arena = arena;
      this.#arenaUsed = 0;
      this.#transfer.push(arena.buffer);
    }
    const start = this.#arenaUsed;
    arena.set(payload, start);
    this.#arenaUsed = start + size;
    return arena.subarray(start, start + size);
  }

  /**
   * Subscribes `handler` to a topic filter ('+' and '#' wildcards). Handlers run on the app thread; one
   * that throws is isolated and reported (an 'error' event with HOLDFAST_HANDLER_FAILED). Filters given
   * before the first connection are sent when it connects, and again on every reconnect without a
   * session; with a persistent session, messages sent while the device was offline arrive after it
   * reconnects.
   */
  subscribe(filter: string, handler: MessageHandler, options?: { qos?: 0 | 1 | 2 }): void {
    if (this.#closing) throw new HoldfastError(ErrorCodes.CLOSED, 'subscribe() after close()');
    if (this.#supervisor.failure) throw this.#supervisor.failure;
    validateFilter(filter);
    if (typeof handler !== 'function') {
      throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, 'subscribe(filter, handler): handler must be a function', { details: { field: 'handler' } });
    }
    const qos = options?.qos ?? 2;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new HoldfastError(ErrorCodes.INVALID_QOS, `subscribe qos must be 0, 1 or 2; got ${String(qos)}`, { details: { field: 'qos' } });
    }
    const id = this.#subscriptions.add(filter, handler);
    if (id !== undefined) this.#supervisor.post({ type: 'subscribe', filter, qos, id });
  }

  /** Removes every handler of `filter` and unsubscribes from it. */
  unsubscribe(filter: string): void {
    if (this.#closing) throw new HoldfastError(ErrorCodes.CLOSED, 'unsubscribe() after close()');
    if (this.#supervisor.failure) throw this.#supervisor.failure;
    validateFilter(filter);
    if (this.#subscriptions.remove(filter)) this.#supervisor.post({ type: 'unsubscribe', filter });
  }

  /** @internal open() hands over the /health server it started, so close() stops it. */
  attachHealth(server: HealthServer): void {
    this.#health = server;
  }

  /** Counters, current to the last worker update (they live in shared memory). */
  stats(): HoldfastStats {
    const s = this.#supervisor;
    return snapshotStats(this.#stats, {
      state: this.#state,
      accepted: this.#accepted,
      batched: this.#topics.length + s.queuedReadings,
      lastSeq: this.#lastSeq,
      workerRestarts: s.restarts,
      lostInWorkerCrashes: s.lostInWorkerCrashes,
      lostInWorkerCrashesRanges: s.lostInWorkerCrashesRanges,
      workerFailure: s.failure?.message,
    });
  }

  /** The current state: 'direct' | 'caching' | 'draining' | 'closed' | 'restarting' | 'failed'. */
  get state(): ClientState {
    return this.#state;
  }

  /**
   * Resolves when every message accepted so far is durable (journal) or delivered or spilled (spill).
   * While the broker is unreachable it spills at once instead of waiting for timeoutMs.
   */
  flush(): Promise<void> {
    if (this.#lastSeq === 0) return Promise.resolve();
    return this.#request((id) => ({ type: 'flush', id, upTo: this.#lastSeq }));
  }

  /** Resolves when nothing is pending anywhere: memory, in flight, cache. */
  drained(): Promise<void> {
    return this.#request((id) => ({ type: 'drained', id }));
  }

  /** The messages the broker refused (poison messages), with the broker's reason, oldest first. */
  async deadLetters(): Promise<DeadLetter[]> {
    const letters = await this.#request<DeadLetter[]>((id) => ({ type: 'deadLetters', id }));
    // Structured clone turns Buffers into plain Uint8Arrays.
    for (const letter of letters) letter.payload = Buffer.from(letter.payload.buffer, letter.payload.byteOffset, letter.payload.byteLength);
    return letters;
  }

  /**
   * Sends dead letters again (all of them, or the given seqs): they go back into the cache in seq
   * order and drain before newer messages. Resolves with how many were requeued.
   */
  requeueDeadLetters(seqs?: number[]): Promise<number> {
    if (seqs !== undefined && (!Array.isArray(seqs) || !seqs.every((s) => Number.isSafeInteger(s) && s > 0))) {
      throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, 'requeueDeadLetters(seqs) takes an array of seqs (positive integers) or nothing', {
        details: { field: 'seqs' },
      });
    }
    return this.#request<number>((id) => ({ type: 'requeue', id, seqs }));
  }

  /**
   * Graceful, bounded shutdown: stops intake, spills what is pending to the cache, sends DISCONNECT if
   * connected and stops the worker. Settles within closeTimeoutMs (+2 s) even with the broker hung.
   * Resolves only when every accepted reading is safe (delivered, or in the cache or intake log);
   * otherwise rejects naming the count and seq ranges it could not save: HOLDFAST_TIMEOUT when the
   * worker was stuck and had to be terminated, HOLDFAST_CACHE_WRITE_FAILED when the final spill
   * failed (a full disk), HOLDFAST_WORKER_FAILED after a failed restart that lost readings.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // The worker deletes the last segment once everything in it is committed.
    this.#intake?.close();
    this.#postBatch();
    try {
      await this.#supervisor.close();
    } finally {
      this.#closed = true;
      await this.#health?.close();
    }
  }

  #request<T = void>(build: (id: number) => Request): Promise<T> {
    if (!this.#closed) this.#postBatch();
    return this.#supervisor.request<T>(build);
  }

  readonly #postScheduledBatch = (): void => {
    this.#postScheduled = false;
    this.#postBatch();
  };

  #postBatch(): void {
    if (this.#closed) return;
    // Before the batch holding their first records, so the worker can sync them.
    for (const name of this.#intake?.takeOpened() ?? []) this.#supervisor.post({ type: 'intakeOpened', name });
    if (this.#topics.length > 0) this.#postRecords();
    // After the batch that holds their last records, so the worker has appended those first.
    const retired = this.#intake?.takeRetired();
    if (retired) this.#supervisor.post({ type: 'intakeRetired', segments: retired });
  }

  #postRecords(): void {
    const batch: PublishBatch = {
      type: 'publish',
      firstSeq: this.#firstSeq,
      topics: this.#topics,
      payloads: this.#payloads,
      priorities: this.#priorities,
      flags: this.#flags,
      timestamps: this.#timestamps,
    };
    // postMessage copies synchronously (the supervisor may keep the batch, so it gets its own arrays).
    this.#supervisor.post(batch, this.#transfer);
    this.#topics.length = 0;
    this.#payloads.length = 0;
    this.#priorities.length = 0;
    this.#flags.length = 0;
    this.#timestamps.length = 0;
    this.#transfer.length = 0;
    // The arenas went to the worker with the batch (transferred, so detached here).
    this.#arena = undefined;
  }

  #onMessage(msg: FromWorker): void {
    switch (msg.type) {
      case 'state':
        // Every one the worker sends is told, also one the state slot already showed at open().
        this.#state = msg.state;
        this.#emitState();
        break;
      case 'epoch':
        this.#seqs.offerEpoch(msg.epoch);
        break;
      case 'message': {
        const payload = Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength);
        const message: IncomingMessage = { topic: msg.topic, payload, qos: msg.qos, retain: msg.retain };
        const ids = msg.properties?.subscriptionIdentifier as number | number[] | undefined;
        if (msg.properties) {
          const { subscriptionIdentifier: _internal, ...properties } = msg.properties;
          if (Object.keys(properties).length > 0) message.properties = properties;
        }
        this.#subscriptions.dispatch(message, ids === undefined ? undefined : Array.isArray(ids) ? ids : [ids]);
        break;
      }
      case 'event':
        this.emit(msg.name, msg.data);
        // The offline flag is part of what a 'state' listener learns.
        if (msg.name === 'offline' || msg.name === 'online') this.#emitState();
        break;
      case 'error':
        this.#emitError(deserializeError(msg.error));
        break;
      case 'reply':
      case 'ready':
      case 'fatal':
      case 'closed':
        // The supervisor's.
        break;
      default: {
        const never: never = msg;
        throw new Error(`unknown worker message ${JSON.stringify(never)}`);
      }
    }
  }

  #emitError(err: HoldfastError): void {
    // An 'error' event without a listener would throw and take the app down; a warning is enough.
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(`${err.code}: ${err.message}`, 'HoldfastWarning');
  }

  /** Supervision's states ('restarting', 'failed', 'closed', and a replacement's), told once each. */
  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emitState();
  }

  /** 'state' carries the state and, second, whether the client is offline (see HoldfastStats.offline). */
  #emitState(): void {
    this.emit('state', this.#state, readConnectivity(this.#stats, this.#state === 'closed') satisfies Connectivity);
  }
}
