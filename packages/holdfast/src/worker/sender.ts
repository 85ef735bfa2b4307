import { serializeError, ErrorCodes } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { FromWorker, PublishBatch } from '../protocol.js';
import type { Cache } from './cache.js';
import { Ballast } from './ballast.js';
import { cacheHealthHooks } from './cache-health.js';
import { CacheWriter } from './cache-writer.js';
import { deadLetterUnreadable, nextToDrain } from './drain.js';
import type { DurabilityPolicy } from './durability/policy.js';
import { DeliveryLedger } from './delivery-ledger.js';
import { Dispatcher, type DispatchLink } from './dispatcher.js';
import { Exchange } from './exchange.js';
import { MemoryQueue } from './memory-queue.js';
import type { DerivedMessageIds } from './message-ids.js';
import type { OutgoingEntry, OutgoingStore } from './outgoing-store.js';
import type { ProgressFile } from './progress-file.js';
import { recordsOf, type Rec } from './record.js';
import { commitPendingWrites, settleInflight } from './sender-shutdown.js';
import { SenderStats } from './sender-stats.js';
import { transition, type SenderEvent, type SenderState } from './states.js';
import { Waiters } from './waiters.js';

export interface SenderDeps {
  options: ResolvedOptions;
  policy: DurabilityPolicy;
  cache: Cache;
  progress: ProgressFile;
  ids: DerivedMessageIds;
  store: OutgoingStore;
  link: DispatchLink;
  stats: Float64Array;
  post: (msg: FromWorker) => void;
}

/**
 * The worker's sender decides what goes on the wire next: the memory queue while DIRECT, the cache
 * (oldest first) while DRAINING, nothing new while CACHING. start() picks the first state; every change
 * after it goes through #on() and the transition table in states.ts. What differs between spill and
 * journal is a policy object (durability/); the exchange on the wire and how it ends is the Dispatcher's.
 */
export class Sender {
  #state: SenderState = 'direct';
  #closing = false;
  #readScheduled = false;
  /** Delivered since the drain started (for 'drain-end'). */
  #drainedCount = 0;
  /** The exchange on the wire: acknowledgements and MQTT.js's store go to it directly (main.ts). */
  readonly dispatcher: Dispatcher;
  readonly #writer: CacheWriter;
  readonly #mem = new MemoryQueue();
  readonly #waiters: Waiters;
  readonly #o: ResolvedOptions;
  readonly #policy: DurabilityPolicy;
  readonly #cache: Cache;
  readonly #ledger: DeliveryLedger;
  /** Dead letters are on their way back into the cache: the drain waits (see requeue()). */
  #requeueing = false;
  /** The start's sweep of what the progress file says is done has not committed yet: the drain waits. */
  #sweeping = true;
  readonly #link: DispatchLink;
  readonly #stats: SenderStats;
  readonly #post: (msg: FromWorker) => void;

  constructor(deps: SenderDeps) {
    ({ options: this.#o, policy: this.#policy, cache: this.#cache, link: this.#link, post: this.#post } = deps);
    this.#stats = new SenderStats(deps.stats);
    this.#waiters = new Waiters((id) => this.#post({ type: 'reply', id }));
    const ballast = new Ballast(this.#o.cacheDir);
    ballast.restore();
    const health = cacheHealthHooks(deps.stats, this.#post, () => this.#updateMemStats());
    this.#writer = new CacheWriter(this.#cache, ballast, this.#o.highWater.messages, {
      isProtected: (seq) => this.dispatcher.carries(seq),
      done: () => this.#ledger.done,
      lowestHeldOutside: () => this.#inFlightUncached(),
      committed: () => {
        this.#updateCacheStats();
        this.#settleWaiters();
        this.#pump();
      },
      evicted: (eviction) => health.evicted(eviction),
      failed: (err, first) => health.failed(err, first),
      recovered: () => health.recovered(),
    });
    this.#ledger = new DeliveryLedger(deps.progress, this.#cache, this.#writer);
    this.dispatcher = new Dispatcher({
      ...deps,
      ledger: this.#ledger,
      stats: this.#stats,
      writer: this.#writer,
      progressInDirect: this.#policy.progressInDirect,
      hooks: {
        settled: (exchange, delivered) => this.#settled(exchange, delivered),
        unsent: (exchange) => this.#unsent(exchange),
        timedOut: () => this.#on('timeout'),
      },
    });
  }

  /** Starts: a backlog or a packet left in flight by the last run means the cache drains first. */
  start(recovered: readonly OutgoingEntry[], legacy: readonly number[]): void {
    // What the progress file says is done leaves the cache before anything is read from it. A sweep
    // the disk refuses is the writer's disk-full recovery's (it tracks it); the drain goes on.
    const swept = (): void => {
      this.#sweeping = false;
      this.#pump();
    };
    this.#ledger.sweepAtStart().then(swept, swept);
    this.dispatcher.recover(recovered, legacy);
    if (this.#cache.messages > 0 || recovered.length > 0) this.#enter('draining', 'a backlog from the last run drains first');
    else this.#enter('direct', 'nothing left from the last run');
    this.#updateCacheStats();
    this.#pump();
  }

  get state(): SenderState {
    return this.#state;
  }

  /** The lowest seq a crash could still lose (Infinity when none). */
  get lowestVolatileSeq(): number {
    return Math.min(this.#writer.lowestVolatileSeq, this.#inFlightUncached(), this.#mem.peek()?.seq ?? Infinity);
  }

  /** The lowest seq in flight without being in the cache (sent from memory, or from the disk-full overflow). */
  #inFlightUncached(): number {
    const exchange = this.dispatcher.inflight.current;
    return (exchange && !exchange.cached ? exchange.recs[0]?.seq : undefined) ?? Infinity;
  }

  // ── input ─────────────────────────────────────────────────────────────────────────────────

  onBatch(batch: PublishBatch): void {
    const recs = recordsOf(batch);
    this.#stats.received(recs.length);
    if (this.#state !== 'direct') {
      // Trouble: input goes the cache's way, behind the backlog, a window's worth per transaction.
      this.#writer.appendWindowed(recs);
      this.#stats.spilled(recs.length);
      this.#updateCacheStats();
    } else {
      const now = performance.now();
      for (const rec of recs) this.#mem.push(rec, now);
      if (this.#mem.length > this.#o.highWater.messages || this.#mem.bytes > this.#o.highWater.bytes) this.#on('high-water');
      else if (this.#policy.spillsWhenFallingBehind && now - this.#mem.oldestArrivedAt! >= this.#o.timeoutMs) this.#on('falling-behind');
    }
    this.#updateMemStats();
    this.#pump();
  }

  flush(id: number, upTo: number): void {
    this.#waiters.addFlush(id, upTo);
    this.#policy.hurry(upTo);
    this.#writer.hurry();
    if (this.#policy.flushSpillsOffline && !this.#link.connected) this.#on('flush-offline');
    this.#settleWaiters();
  }

  whenDrained(id: number): void {
    this.#waiters.addDrained(id);
    this.#settleWaiters();
  }

  async requeue(id: number, seqs: number[] | undefined): Promise<void> {
    // The drain waits while they land (they keep their old seqs, below the delivered floor).
    this.#requeueing = true;
    try {
      const count = await this.#ledger.requeueDeadLetters(seqs);
      this.#requeueing = false;
      if (count > 0) {
        this.#stats.deadLettered(-count);
        this.#on('requeue');
      }
      this.#updateCacheStats();
      this.#post({ type: 'reply', id, value: count });
      this.#pump();
    } catch (err) {
      this.#requeueing = false;
      this.#post({ type: 'reply', id, error: serializeError(err, ErrorCodes.CACHE_WRITE_FAILED) });
    }
  }

  // ── the link ──────────────────────────────────────────────────────────────────────────────

  linkUp(connection: number): void {
    this.dispatcher.linkUp(connection);
  }

  /** MQTT.js resent its store; new exchanges can go out. */
  linkReady(): void {
    this.#resumeIfFree();
    this.#pump();
  }

  linkDown(connection: number, reason: string): void {
    this.dispatcher.linkDown(connection, reason);
    this.#on('link-down');
  }

  linkUnreachable(): void {
    this.#on('link-down');
  }

  /** Something became durable outside the cache (journal mode's intake log): flush() may settle. */
  settle(): void {
    this.#settleWaiters();
  }

  // ── what goes next ────────────────────────────────────────────────────────────────────────

  #pump(): void {
    if (this.#closing || this.dispatcher.busy || !this.#link.ready) return this.#settleWaiters();
    if (this.#state === 'direct') {
      const rec = this.#mem.peek();
      if (!rec) return this.#settleWaiters();
      this.#mem.shift();
      this.#updateMemStats();
      this.dispatcher.send(new Exchange([rec.seq], [rec], false), false);
    } else if (this.#state === 'draining') {
      this.#scheduleCacheRead();
    }
  }

  /**
   * The drain reads on the next turn, not after the writes in progress: a read sees the last commit,
   * and nothing it could wrongly send is missing from it (records on their way in are newer than
   * anything sendable, see nextToDrain; records on their way out are skipped, writer.leavingSeqs). On a
   * slow card a commit takes two flushes, which the drain would otherwise wait out before every read.
   */
  #scheduleCacheRead(afterWrites = false): void {
    if (this.#readScheduled) return;
    this.#readScheduled = true;
    const read = (): void => {
      this.#readScheduled = false;
      this.#drainNext();
    };
    if (afterWrites) void this.#cache.settled().then(read);
    else setImmediate(read);
  }

  /** Sends the oldest pending reading, from the cache (or from memory while it waits for disk space). */
  #drainNext(): void {
    if (this.#closing || this.#requeueing || this.#sweeping || this.dispatcher.busy || this.#state !== 'draining' || !this.#link.ready) return;
    if (this.#writer.reshaping) return this.#scheduleCacheRead(true);
    const step = nextToDrain(this.#cache, this.#writer, this.#ledger, this.#o.bulk);
    switch (step.kind) {
      case 'send':
        this.#updateMemStats();
        return this.dispatcher.send(step.exchange, step.asBulk);
      case 'unreadable':
        deadLetterUnreadable(step.unreadable, { cache: this.#cache, writer: this.#writer, ledger: this.#ledger, stats: this.#stats, post: this.#post });
        return this.#scheduleCacheRead();
      case 'wait':
        // The next reading is on its way into the cache: no need to wait out the append window.
        this.#writer.hurry();
        return this.#scheduleCacheRead(true);
      case 'empty':
        // Input that never reached the cache goes back to memory, ahead of anything newer.
        this.#mem.restore(this.#writer.takeWindowed(), performance.now());
        this.#ledger.removeDeliveredSoon();
        this.#post({ type: 'event', name: 'drain-end', data: { delivered: this.#drainedCount } });
        return this.#on('cache-empty');
    }
  }

  /** The exchange ended: count it, and send the next (a microtask later: never recursively). */
  #settled(exchange: Exchange, delivered: boolean): void {
    if (delivered && this.#state === 'draining') this.#drainedCount += exchange.seqs.length;
    this.#resumeIfFree();
    this.#settleWaiters();
    queueMicrotask(() => this.#pump());
  }

  /** MQTT.js dropped the exchange before storing it: it goes back to where it came from. */
  #unsent(exchange: Exchange): void {
    if (!exchange.cached) {
      if (this.#state === 'direct') this.#mem.restore(exchange.recs, performance.now());
      else this.#writer.append([...exchange.recs]);
    }
    this.#updateMemStats();
    setImmediate(() => this.#pump());
  }

  // ── state ─────────────────────────────────────────────────────────────────────────────────

  /** The one place the state changes: through the transition table. */
  #on(event: SenderEvent): void {
    if (this.#closing && event !== 'close') return;
    const t = transition(this.#state, event);
    if (!t || (!t.evenIfIdle && !this.dispatcher.busy && this.#mem.length === 0)) return;
    if (t.spill) this.#spill(event);
    this.#enter(t.to, t.reason);
    this.#resumeIfFree();
    this.#pump();
  }

  /** CACHING with nothing stuck and a ready link goes on draining at once. */
  #resumeIfFree(): void {
    if (this.#state === 'caching' && !this.dispatcher.busy && this.#link.ready && !this.#closing) this.#on('resume');
  }

  /** The pending stream (the exchange in flight and the memory queue) into the cache, in one transaction. */
  #spill(event: SenderEvent): void {
    const exchange = this.dispatcher.inflight.current;
    const uncached = exchange && !exchange.cached ? exchange.recs : [];
    if (exchange && !exchange.cached) {
      exchange.cached = true;
      this.dispatcher.spilling();
    }
    const recs = [...uncached, ...this.#mem.drain()];
    this.#updateMemStats();
    this.#writer.append(recs);
    this.#updateCacheStats();
    this.#stats.spilled(recs.length);
    // Also with nothing pending: the log shows why the client started caching (a link down while idle).
    this.#post({ type: 'event', name: 'spill', data: { messages: recs.length, reason: event } });
  }

  #enter(state: SenderState, reason: string): void {
    const previous = this.#state;
    this.#state = state;
    this.#stats.state(state);
    if (previous === state) return;
    if (state === 'draining') {
      this.#drainedCount = 0;
      this.#post({ type: 'event', name: 'drain-start', data: { cached: this.#cache.messages, reason } });
    }
    this.#post({ type: 'state', state });
  }

  // ── waiting and stats ─────────────────────────────────────────────────────────────────────

  #settleWaiters(): void {
    this.#stats.safeBelow(this.lowestVolatileSeq);
    this.#waiters.settleFlush(this.#policy.lowestUnsafe(this.lowestVolatileSeq));
    if (this.#waiters.hasDrained && this.#isIdle()) this.#waiters.settleDrained();
  }

  #isIdle(): boolean {
    return this.#state === 'direct' && !this.dispatcher.busy && this.#mem.length === 0 && this.#cache.messages === 0 && this.#writer.idle;
  }

  #updateMemStats(): void {
    this.#stats.memory(this.#mem.length + this.#writer.overflowLength, this.#mem.bytes);
  }

  #updateCacheStats(): void {
    this.#stats.cache(this.#cache, this.#ledger.deliveredFloor);
  }

  /** Hands over the latencies gathered since the last call. */
  takeLatencies(): number[] {
    return this.dispatcher.latencies.take();
  }

  // ── shutdown ──────────────────────────────────────────────────────────────────────────────

  /**
   * Stops intake and sending, and spills whatever is pending. Resolves when it is committed, with the
   * readings a full disk would not take before `deadlineMs` (lost: close() reports them).
   */
  async stop(deadlineMs: number): Promise<Rec[]> {
    this.#closing = true;
    this.#on('close');
    return commitPendingWrites(this.#writer, this.#ledger, this.#cache, deadlineMs);
  }

  /** Waits (bounded) for the message in flight to complete, so a clean close leaves nothing mid-air. */
  settleInflight(timeoutMs: number): Promise<void> {
    return settleInflight(this.dispatcher, this.#ledger, this.#cache, timeoutMs);
  }
}
