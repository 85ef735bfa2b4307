import { monotonicMs } from './worker/clock.js';
import { OFFLINE_CAUSES, Stat, STATES, type ClientState, type OfflineCause } from './protocol.js';

export interface CachedStats {
  messages: number;
  bytes: number;
  /** Age of the oldest cached message by wall clock, clamped at 0 (a clock jump never makes it negative). */
  oldestAgeMs: number;
  /** Cached messages per priority, 1 (lowest) to 10. */
  byPriority: Record<number, number>;
}

export interface HoldfastStats {
  state: ClientState;
  connected: boolean;
  /**
   * True while the broker is out of reach: not connected, or connected with the message in flight
   * unanswered for longer than a quarter of timeoutMs (a hung broker, a stalled link). Independent of
   * `state`, which says where new readings go; false once closed.
   */
  offline: boolean;
  /** Why the client is offline ('disconnected' or 'exchange-overdue'); undefined while online. */
  offlineCause: OfflineCause | undefined;
  /** How long the current outage has lasted (monotonic clock); 0 while online. */
  offlineForMs: number;
  /** Messages accepted by publish() since open(). */
  accepted: number;
  /** The last seq handed out (0 before the first publish). */
  lastSeq: number;
  /** Messages held in memory: this tick's batch plus the worker's queue. */
  memoryQueued: number;
  memoryBytes: number;
  /** Messages in flight (0 or 1; a bulk counts as its readings). */
  inflight: number;
  cached: CachedStats;
  /** Messages whose PUBCOMP (PUBACK at QoS 1) arrived. */
  delivered: number;
  /** Messages written to the cache because of trouble (timeout, high water, close). */
  spilled: number;
  evicted: number;
  deadLettered: number;
  reconnects: number;
  cleanDisconnects: number;
  networkDisconnects: number;
  /** False after a cache write failed (disk full); the client is then unhealthy. */
  cacheWritable: boolean;
  /** Times the worker died and was restarted on the same cache (each one a 'worker-restart' event). */
  workerRestarts: number;
  /** Readings lost with dead workers: only in their memory (spill), or not in the intake log either (journal). */
  lostInWorkerCrashes: number;
  /** Their seqs as inclusive ranges `[first, last]`, ascending: the newest 64 ranges (each crash adds one or two). */
  lostInWorkerCrashesRanges: Array<[number, number]>;
  /** Why the worker could not be restarted (state 'failed'); undefined otherwise. */
  workerFailure: string | undefined;
}

/** The offline fields of stats(), also what a 'state' listener receives as its second argument. */
export type Connectivity = Pick<HoldfastStats, 'offline' | 'offlineCause' | 'offlineForMs'>;

export function readConnectivity(s: Float64Array, closed: boolean): Connectivity {
  if (closed || s[Stat.offline] !== 1) return { offline: false, offlineCause: undefined, offlineForMs: 0 };
  return {
    offline: true,
    offlineCause: OFFLINE_CAUSES[s[Stat.offlineCause] ?? 0],
    offlineForMs: Math.max(0, Math.round(monotonicMs() - (s[Stat.offlineSinceMs] ?? 0))),
  };
}

/** What the facade knows that the worker's shared counters do not. */
export interface FacadeStats {
  state: ClientState;
  accepted: number;
  /** Readings not yet posted to the worker: this tick's batch, and any waiting for a restart. */
  batched: number;
  lastSeq: number;
  workerRestarts: number;
  lostInWorkerCrashes: number;
  lostInWorkerCrashesRanges: Array<[number, number]>;
  workerFailure: string | undefined;
}

/** States only the facade knows; otherwise the state comes from the shared slot, current to the last write. */
const FACADE_STATES = new Set<ClientState>(['closed', 'restarting', 'failed']);

export function snapshotStats(s: Float64Array, facade: FacadeStats): HoldfastStats {
  const { state, accepted, batched, lastSeq } = facade;
  const byPriority: Record<number, number> = {};
  for (let p = 1; p <= 10; p++) byPriority[p] = s[Stat.byPriority + p - 1] ?? 0;
  const oldestTs = s[Stat.oldestCachedTs] ?? 0;
  const cachedMessages = s[Stat.cachedMessages] ?? 0;
  return {
    state: FACADE_STATES.has(state) ? state : (STATES[s[Stat.state] ?? 0] ?? state),
    connected: s[Stat.connected] === 1,
    ...readConnectivity(s, state === 'closed'),
    accepted,
    lastSeq,
    memoryQueued: batched + (s[Stat.memoryQueued] ?? 0),
    memoryBytes: s[Stat.memoryBytes] ?? 0,
    inflight: s[Stat.inflight] ?? 0,
    cached: {
      messages: cachedMessages,
      bytes: s[Stat.cachedBytes] ?? 0,
      oldestAgeMs: cachedMessages > 0 && oldestTs > 0 ? Math.max(0, Date.now() - oldestTs) : 0,
      byPriority,
    },
    delivered: s[Stat.delivered] ?? 0,
    spilled: s[Stat.spilled] ?? 0,
    evicted: s[Stat.evicted] ?? 0,
    deadLettered: s[Stat.deadLettered] ?? 0,
    reconnects: s[Stat.reconnects] ?? 0,
    cleanDisconnects: s[Stat.cleanDisconnects] ?? 0,
    networkDisconnects: s[Stat.networkDisconnects] ?? 0,
    cacheWritable: s[Stat.cacheWritable] !== 0,
    workerRestarts: facade.workerRestarts,
    lostInWorkerCrashes: facade.lostInWorkerCrashes,
    lostInWorkerCrashesRanges: facade.lostInWorkerCrashesRanges,
    workerFailure: facade.workerFailure,
  };
}
