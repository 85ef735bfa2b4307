import { monotonicMs } from './clock.js';
import { OFFLINE_CAUSES, Stat, type FromWorker, type OfflineCause } from '../protocol.js';

/**
 * How long the exchange in flight may go unanswered on a live connection before the client counts as
 * offline: a quarter of timeoutMs (2.5 s by default). Well below timeoutMs on purpose, so an outage shows
 * in stats(), /health and the log before the sender gives up on the exchange and spills.
 */
export function overdueAfterMs(timeoutMs: number): number {
  return Math.max(1, Math.round(timeoutMs / 4));
}

/**
 * Decides whether the client is offline and says so once per change: in the shared stats (offline,
 * since when, why) and as an 'offline' / 'online' event, which the worker's log records. Offline means
 * not connected, or connected with the exchange in flight unanswered for longer than `overdueMs`,
 * which is how a hung broker (SIGSTOP) or a stalled link looks until keepalive gives up on it.
 */
export class OfflineWatch {
  readonly #stats: Float64Array;
  readonly #post: (msg: FromWorker) => void;
  readonly #overdueMs: number;
  readonly #timer: NodeJS.Timeout;
  /** When the current connection came up (monotonic ms); 0 while disconnected. */
  #connectedAt = 0;
  /** The start stamp of the exchange reported overdue: any other value in the stats means it moved on. */
  #overdueExchange = 0;
  #stopped = false;

  constructor(stats: Float64Array, post: (msg: FromWorker) => void, overdueMs: number) {
    this.#stats = stats;
    this.#post = post;
    this.#overdueMs = overdueMs;
    // Offline until the first CONNACK: open() never waits for the broker. A worker that replaces a dead
    // one carries on the outage the supervisor recorded at the death.
    this.#set('disconnected', this.offline ? (stats[Stat.offlineSinceMs] ?? monotonicMs()) : monotonicMs());
    // The sender only stamps when an exchange starts; a poll notices when one has waited too long.
    this.#timer = setInterval(() => this.#check(), Math.max(20, Math.min(250, overdueMs / 4)));
    this.#timer.unref();
  }

  get offline(): boolean {
    return this.#stats[Stat.offline] === 1;
  }

  connected(): void {
    if (this.#stopped) return;
    this.#connectedAt = monotonicMs();
    // An exchange carried over from the last connection is timed from this one, where it is resent.
    if (this.offline) this.#online();
  }

  disconnected(reason: string): void {
    if (this.#stopped) return;
    this.#connectedAt = 0;
    this.#overdueExchange = 0;
    if (!this.offline) this.#offline('disconnected', monotonicMs(), { reason });
    // Already offline with an overdue exchange: the same outage goes on, now without a connection.
    else this.#stats[Stat.offlineCause] = OFFLINE_CAUSES.indexOf('disconnected');
  }

  /** Stops watching (at close, so closing is not reported as an outage). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  #check(): void {
    if (this.#connectedAt === 0) return;
    const started = this.#stats[Stat.exchangeStartedMs] ?? 0;
    if (this.offline) {
      // Completed (0), or a newer exchange was sent: the broker answers again.
      if (started !== this.#overdueExchange) this.#online();
      return;
    }
    if (started === 0) return;
    const waitingSince = Math.max(started, this.#connectedAt);
    const waitedMs = monotonicMs() - waitingSince;
    if (waitedMs <= this.#overdueMs) return;
    this.#overdueExchange = started;
    this.#offline('exchange-overdue', waitingSince, { reason: 'no answer from the broker to the message in flight', waitedMs: Math.round(waitedMs), thresholdMs: this.#overdueMs });
  }

  #offline(cause: OfflineCause, since: number, details: Record<string, unknown>): void {
    this.#set(cause, since);
    this.#post({ type: 'event', name: 'offline', data: { cause, ...details } });
  }

  #online(): void {
    const cause = OFFLINE_CAUSES[this.#stats[Stat.offlineCause] ?? 0];
    const offlineMs = Math.round(monotonicMs() - (this.#stats[Stat.offlineSinceMs] ?? 0));
    this.#overdueExchange = 0;
    this.#stats[Stat.offline] = 0;
    this.#post({ type: 'event', name: 'online', data: { cause, offlineMs } });
  }

  #set(cause: OfflineCause, since: number): void {
    this.#stats[Stat.offlineCause] = OFFLINE_CAUSES.indexOf(cause);
    this.#stats[Stat.offlineSinceMs] = since;
    this.#stats[Stat.offline] = 1;
  }
}
