/**
 * The facade↔worker protocol, defined once. Every message on the MessageChannel is one of these
 * discriminated unions; both sides switch on `type` and the compiler checks exhaustiveness.
 */
import type { SerializedError } from './errors.js';
import type { MessagePort } from 'node:worker_threads';
import type { ResolvedOptions } from './options.js';

/**
 * The worker's states, then the facade's own: 'restarting' while a dead worker is replaced, 'failed'
 * once it could not be (see supervisor.ts). The worker writes its state's index here into Stat.state.
 */
export type ClientState = 'direct' | 'caching' | 'draining' | 'closed' | 'restarting' | 'failed';
export const STATES: readonly ClientState[] = ['direct', 'caching', 'draining', 'closed', 'restarting', 'failed'];

/** Bit flags per message in a publish batch. */
export const FLAG_QOS2 = 1;
export const FLAG_RETAIN = 2;

/**
 * One tick's worth of publish() calls, column by column so the facade appends to arrays instead of
 * allocating an object per call. Seqs are consecutive from `firstSeq`.
 */
export interface PublishBatch {
  type: 'publish';
  firstSeq: number;
  topics: string[];
  payloads: Array<string | Uint8Array>;
  priorities: number[];
  flags: number[];
  /** Wall-clock ms at publish(); informational (bulk `ts`, age) and never used for order. */
  timestamps: number[];
}

export type ToWorker =
  | PublishBatch
  /** Resolve when every seq ≤ upTo is durable (journal) or delivered/spilled (spill). */
  | { type: 'flush'; id: number; upTo: number }
  /** Resolve when nothing is pending anywhere: memory, in flight, cache. */
  | { type: 'drained'; id: number }
  /** Reserve the next seq epoch durably; answered by `epoch`. */
  | { type: 'reserveEpoch' }
  /** List the dead-letter store; answered by a reply whose value is DeadLetter[]. */
  | { type: 'deadLetters'; id: number }
  /** Move dead letters (all, or these seqs) back into the cache to be sent again; value: count. */
  | { type: 'requeue'; id: number; seqs: number[] | undefined }
  /** Subscribe (again) to a filter; the worker also re-subscribes on every connection. */
  | { type: 'subscribe'; filter: string; qos: 0 | 1 | 2; id: number }
  | { type: 'unsubscribe'; filter: string }
  /** Journal mode: the facade started an intake log segment (sent before the batch holding its first record). */
  | { type: 'intakeOpened'; name: string }
  /** Journal mode: intake log segments closed, sent after the batch holding their last records. */
  | { type: 'intakeRetired'; segments: RetiredSegment[] }
  | { type: 'close'; id: number }
  /** Test builds only (HOLDFAST_TEST_HOOKS=1 at open()): the worker dies as asked; ignored otherwise. */
  | { type: 'testFault'; fault: TestFault };

/**
 * How a test asks the worker to die: an uncaught exception, process.exit(), running out of heap, a
 * blocked event loop, or a crash just before it sends a given seq (kept across restarts). Or, with
 * 'slow-restart', how long each later replacement worker waits before it opens the cache.
 */
export type TestFault = { kind: 'throw' | 'exit' | 'oom' | 'hang' } | { kind: 'crash-at-seq'; seq: number } | { kind: 'slow-restart'; ms: number };

/** A message the broker refused, kept with its reason. */
export interface DeadLetter {
  seq: number;
  topic: string;
  payload: Buffer;
  priority: number;
  /** Wall-clock ms at publish() (informational). */
  ts: number;
  reason: string;
}

/** The client event that carries publish-to-PUBCOMP latencies, batched by the worker. */
export const LATENCY_EVENT = 'delivery-latency';
export interface DeliveryLatencyEvent {
  /** One entry per delivered message: ms from publish() to PUBCOMP (PUBACK at QoS 1). */
  latenciesMs: number[];
}

export type HoldfastEventName =
  | 'connect'
  | 'disconnect'
  | 'reconnecting'
  | 'offline'
  | 'online'
  | 'spill'
  | 'drain-start'
  | 'drain-end'
  | 'dead-letter'
  | 'evict'
  | 'cache-recovered'
  | 'intake-replayed'
  | 'quarantine'
  | 'connection-error'
  | 'delivery-latency'
  /** An exchange had no acknowledgement for watchdogMs on a live connection: the client reconnects to resend it. */
  | 'watchdog';

/**
 * Why the client is offline: no connection to the broker, or a connection on which the exchange in
 * flight has gone unanswered for longer than the overdue threshold (a hung broker, a stalled link).
 */
export type OfflineCause = 'disconnected' | 'exchange-overdue';
export const OFFLINE_CAUSES: readonly OfflineCause[] = ['disconnected', 'exchange-overdue'];

export type FromWorker =
  | WorkerReady
  | { type: 'state'; state: ClientState }
  | { type: 'reply'; id: number; error?: SerializedError; value?: unknown }
  | { type: 'epoch'; epoch: number }
  /** A message for the app's subscriptions (payload bytes transferred, not copied). */
  | { type: 'message'; topic: string; payload: Uint8Array; qos: 0 | 1 | 2; retain: boolean; properties: Record<string, unknown> | undefined }
  /* MQTT 5 Subscription Identifiers in `properties.subscriptionIdentifier` say which subscriptions a copy is for. */
  | { type: 'event'; name: HoldfastEventName; data: Record<string, unknown> }
  /** A failure with no caller to reject: surfaced as the client's 'error' event. */
  | { type: 'error'; error: SerializedError }
  /** The worker is dying (why, in words) and blocks until the facade terminates it (worker/fatal.ts). */
  | { type: 'fatal'; cause: string }
  | { type: 'closed' };

export interface WorkerReady {
  type: 'ready';
  epoch: number;
  /** Set when the cache could not be read and was renamed aside (kept for forensics). */
  quarantined: QuarantineInfo | undefined;
  /** Journal mode with a cacheKey(File): the key, so the intake log is sealed as the cache is. */
  cacheKey: Uint8Array | undefined;
}

/** Intake log segments the facade closed; deleted once every seq up to `lastSeq` is committed. */
export interface RetiredSegment {
  name: string;
  lastSeq: number;
  /** A damaged segment is renamed to this (kept for forensics) instead of deleted, once its readable readings are committed. */
  setAsideAs?: string;
}

export interface QuarantineInfo {
  /** Where the unreadable file is kept: the cache at once; a damaged intake segment once the readings before the damage are committed. */
  movedTo: string;
  reason: string;
}

/** What the worker receives as workerData. */
export interface WorkerInit {
  options: ResolvedOptions;
  port: MessagePort;
  stats: SharedArrayBuffer;
  /** The client's token in the cacheDir lock: a restarted worker of the same client may take it over. */
  lockToken: string;
  /** Accept testFault messages (HOLDFAST_TEST_HOOKS=1 at open()). */
  testHooks: boolean;
  /** Faults that outlive a worker (crash-at-seq, slow-restart), armed before the worker touches any record. */
  stickyFaults: TestFault[];
  /** Set when this worker replaces one that died (see supervisor.ts). */
  restart: RestartInit | undefined;
}

export interface RestartInit {
  /**
   * Replay intake log readings only up to this seq: the last one posted to the dead worker, or at
   * least the base of this run's first epoch (an earlier run's readings, which a spill run replays
   * too); the facade posts every later reading itself, so none is replayed twice.
   */
  replayThrough: number;
  /** Read only intake segments named before this (a segment name prefix): the facade writes to it and later ones. */
  intakeBefore: string | undefined;
  /** A record the dead workers kept crashing on: dead-letter it before anything else. */
  poison: { seq: number; reason: string } | undefined;
}

/**
 * Live counters the worker writes and the facade reads without a round trip, so stats() is
 * synchronous and current. One Float64 slot each (exact for integers up to 2^53).
 */
export const Stat = {
  state: 0,
  connected: 1,
  memoryQueued: 2,
  memoryBytes: 3,
  inflight: 4,
  cachedMessages: 5,
  cachedBytes: 6,
  oldestCachedTs: 7,
  delivered: 8,
  spilled: 9,
  evicted: 10,
  deadLettered: 11,
  reconnects: 12,
  received: 13,
  duplicatesResent: 14,
  cacheWritable: 15,
  lastDeliveredSeq: 16,
  cleanDisconnects: 17,
  networkDisconnects: 18,
  /** 10 slots: cached messages by priority 1..10. */
  byPriority: 19,
  /** When the exchange in flight was sent, in monotonic ms (monotonicMs()); 0 when none is. */
  exchangeStartedMs: 29,
  /** 1 while offline (see OfflineCause), else 0. */
  offline: 30,
  /** When the current outage began, in monotonic ms. */
  offlineSinceMs: 31,
  /** Index into OFFLINE_CAUSES while offline. */
  offlineCause: 32,
  /**
   * Every seq below this one that the worker received is delivered or committed (or counted as
   * evicted or dead-lettered): the lowest seq a crash could lose. Only ever conservative when stale.
   */
  safeBelow: 33,
  /** The last seq of the last publish batch the worker took from its port. */
  receivedThrough: 34,
  /** The seq the worker is decoding or handing to MQTT.js right now (0: none); read after a crash. */
  workingSeq: 35,
  /** Incremented every second by the worker: a value that stops changing means a blocked event loop. */
  heartbeat: 36,
} as const;
export const STAT_SLOTS = Stat.heartbeat + 1;

/** Seqs are epoch·2^32 + counter: each open() reserves a new epoch durably, so seqs never repeat. */
export const EPOCH_SPAN = 2 ** 32;
export const MAX_EPOCH = 2 ** 21 - 1;
export const epochOf = (seq: number): number => Math.floor(seq / EPOCH_SPAN);
