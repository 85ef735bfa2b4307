import type { MqttClient } from 'mqtt';
import { serializeError, ErrorCodes } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { monotonicMs } from '../monotonic.js';
import { Stat, STATES, type ClientState, type FromWorker, type PublishBatch } from '../protocol.js';
import type { Cache } from './cache.js';
import { Ballast } from './ballast.js';
import { cacheHealthHooks } from './cache-health.js';
import { CacheWriter } from './cache-writer.js';
import { LatencySampler } from './latency.js';
import { MemoryQueue } from './memory-queue.js';
import { buildPublish } from './packet.js';
import type { OutgoingEntry, OutgoingStore } from './outgoing-store.js';
import { recordSize, type Rec } from './record.js';
import { Waiters } from './waiters.js';

interface Inflight {
  recs: Rec[];
  /** The records are in the cache and must be removed from it once delivered. */
  cached: boolean;
  refusal: string | undefined;
}

export interface SenderDeps {
  options: ResolvedOptions;
  cache: Cache;
  store: OutgoingStore;
  stats: Float64Array;
  post: (msg: FromWorker) => void;
}

/**
 * The worker's state machine. One message (or one bulk) is in flight at a time.
 *   DIRECT  ─timeout / high water / close─▶ CACHING   (the pending stream spills in one transaction)
 *   CACHING ─the stuck message completes──▶ DRAINING  (the cache goes out oldest first)
 *   DRAINING ─cache empty─▶ DIRECT;  DRAINING ─timeout─▶ CACHING (stuck again; nothing to write)
 * Input that arrives outside DIRECT is appended to the cache, behind the backlog, so order holds.
 */
export class Sender {
  #state: Exclude<ClientState, 'closed'> = 'direct';
  #client: MqttClient | undefined;
  #maxPacketSize: () => number | undefined = () => undefined;
  #inflight: Inflight | undefined;
  /**
   * The in-flight timeout: one timer re-armed with refresh() at each send, never cleared on completion
   * (a stale expiry finds nothing in flight, or a newer send that re-armed it), so no timer is created
   * and destroyed per message.
   */
  #deadline: NodeJS.Timeout | undefined;
  #closing = false;
  #readScheduled = false;
  /** stats.delivered at the last drain-start, so drain-end says what that drain delivered. */
  #deliveredBeforeDrain = 0;
  /** Seqs left in flight by the previous run; MQTT.js resends them with their packet ids first. */
  readonly #recoveredSeqs = new Set<number>();
  #recoveredPackets = 0;
  readonly #writer: CacheWriter;
  readonly #latencies = new LatencySampler();
  readonly #mem = new MemoryQueue();
  readonly #waiters: Waiters;
  readonly #journal: boolean;
  readonly #o: ResolvedOptions;
  readonly #cache: Cache;
  readonly #store: OutgoingStore;
  readonly #stats: Float64Array;
  readonly #post: (msg: FromWorker) => void;

  constructor(deps: SenderDeps) {
    this.#o = deps.options;
    this.#cache = deps.cache;
    this.#store = deps.store;
    this.#stats = deps.stats;
    this.#post = deps.post;
    this.#journal = deps.options.durability === 'journal';
    this.#waiters = new Waiters((id) => this.#post({ type: 'reply', id }));
    this.#stats[Stat.cacheWritable] = 1;
    const ballast = new Ballast(this.#o.cacheDir);
    ballast.restore();
    this.#writer = new CacheWriter(this.#cache, ballast, this.#o.highWater.messages, {
      isProtected: (seq) => this.#recoveredSeqs.has(seq) || (this.#inflight?.recs.some((r) => r.seq === seq) ?? false) || this.#queuedToSend(seq),
      committed: () => {
        this.#updateCacheStats();
        this.#settleWaiters();
        this.#pump();
      },
      ...cacheHealthHooks(this.#stats, this.#post, () => this.#updateMemStats()),
    });
  }

  /** Starts after a restart: a non-empty cache or a recovered packet means DRAINING first. */
  start(client: MqttClient, recovered: readonly OutgoingEntry[], maxPacketSize: () => number | undefined): void {
    this.#client = client;
    this.#maxPacketSize = maxPacketSize;
    for (const entry of recovered) for (const seq of entry.seqs) this.#recoveredSeqs.add(seq);
    this.#recoveredPackets = recovered.length;
    if (this.#cache.messages > 0 || recovered.length > 0) this.#setState('draining');
    else this.#setState('direct');
    this.#updateCacheStats();
    this.#pump();
  }

  get state(): ClientState {
    return this.#state;
  }

  /**
   * Journal mode in DIRECT: the record is in the cache and also queued in memory, about to be sent, so
   * evicting it would count it as evicted and then deliver it anyway. The memory queue holds every seq
   * from its head on (it is only ever filled in DIRECT, and emptied on leaving it).
   */
  #queuedToSend(seq: number): boolean {
    const head = this.#mem.peek();
    return this.#journal && head !== undefined && seq >= head.seq;
  }

  /** The lowest seq a crash could still lose (Infinity when none). */
  get lowestVolatileSeq(): number {
    return this.#lowestVolatileSeq();
  }

  onBatch(batch: PublishBatch): void {
    const recs: Rec[] = new Array<Rec>(batch.topics.length);
    for (let i = 0; i < recs.length; i++) {
      const topic = batch.topics[i]!;
      const payload = batch.payloads[i]!;
      recs[i] = {
        seq: batch.firstSeq + i,
        topic,
        payload,
        priority: batch.priorities[i]!,
        flags: batch.flags[i]!,
        ts: batch.timestamps[i]!,
        size: recordSize(topic, payload),
      };
    }
    this.#stats[Stat.received]! += recs.length;
    if (this.#state !== 'direct') {
      this.#append(recs);
    } else {
      for (const rec of recs) this.#mem.push(rec);
      // Journal mode: committed before sent; the records stay queued in memory for speed.
      if (this.#journal) this.#append(recs);
      if (this.#mem.length > this.#o.highWater.messages || this.#mem.bytes > this.#o.highWater.bytes) this.#spill('high water');
    }
    this.#updateMemStats();
    this.#pump();
  }

  flush(id: number, upTo: number): void {
    this.#waiters.addFlush(id, upTo);
    // With the link down there is nothing to wait for: make the pending stream durable now.
    if (!this.#journal && this.#stats[Stat.connected] !== 1) this.#spill('flush while offline');
    this.#settleWaiters();
  }

  whenDrained(id: number): void {
    this.#waiters.addDrained(id);
    this.#settleWaiters();
  }

  onConnectionChange(): void {
    if (this.#waiters.hasFlush && !this.#journal && this.#stats[Stat.connected] !== 1) this.#spill('flush while offline');
  }

  // ── sending ───────────────────────────────────────────────────────────────────────────────

  #pump(): void {
    if (this.#inflight || this.#closing || !this.#client || this.#recoveredPackets > 0) return;
    if (this.#state === 'direct') {
      const rec = this.#mem.peek();
      if (!rec) return this.#settleWaiters();
      if (this.#journal && this.#writer.lowestVolatileSeq <= rec.seq) return;
      this.#mem.shift();
      this.#updateMemStats();
      this.#send([rec], this.#journal, false);
    } else if (this.#state === 'draining') {
      this.#scheduleCacheRead();
    }
  }

  #scheduleCacheRead(): void {
    if (this.#readScheduled) return;
    this.#readScheduled = true;
    // Reads see only committed data, so wait for every append issued so far.
    this.#cache.settled().then(
      () => {
        this.#readScheduled = false;
        this.#drainNext();
      },
      () => {
        this.#readScheduled = false;
      },
    );
  }

  #drainNext(): void {
    if (this.#inflight || this.#closing || this.#state !== 'draining' || this.#recoveredPackets > 0) return;
    if (this.#writer.reshaping) return this.#scheduleCacheRead();
    const bulk = this.#o.bulk;
    const skip = this.#writer.hasUnremoved ? this.#writer.delivered : undefined;
    const recs = bulk ? this.#cache.readOldest(bulk.maxMessages, bulk.maxBytes, skip) : this.#cache.readOldest(1, Number.MAX_SAFE_INTEGER, skip);
    if (recs.length > 0) return this.#send(recs, true, bulk !== false);
    // The disk is full and the cache empty: what waits for space goes out from memory, in order.
    const waiting = this.#writer.takeOverflowHead();
    if (waiting) {
      this.#updateMemStats();
      return this.#send([waiting], false, false);
    }
    this.#post({ type: 'event', name: 'drain-end', data: { delivered: this.#stats[Stat.delivered]! - this.#deliveredBeforeDrain } });
    this.#setState('direct');
    if (!this.#journal) this.#writer.track(this.#store.unpersist());
    this.#pump();
  }

  #send(recs: Rec[], cached: boolean, asBulk: boolean): void {
    const limit = this.#maxPacketSize();
    const packet = buildPublish(recs, asBulk, this.#o);
    if (limit !== undefined && packet.estimatedSize > limit) {
      // The broker announced it would refuse this (CONNACK Maximum Packet Size): a poison message.
      this.#completed(recs, cached, undefined, `packet of about ${packet.estimatedSize} bytes exceeds the broker's maximum packet size (${limit})`);
      setImmediate(() => this.#pump());
      return;
    }
    const inflight: Inflight = { recs, cached, refusal: undefined };
    this.#inflight = inflight;
    this.#stats[Stat.inflight] = recs.length;
    this.#stats[Stat.exchangeStartedMs] = monotonicMs();
    this.#store.expect(recs.map((r) => r.seq), packet.properties);
    this.#client!.publish(packet.topic, packet.payload, packet.options, (err) => {
      if (!err || this.#inflight !== inflight) return;
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number' && code >= 0x80) inflight.refusal = err.message;
    });
    if (this.#deadline) this.#deadline.refresh();
    else this.#deadline = setTimeout(() => this.#onTimeout(), this.#o.timeoutMs).unref();
  }

  /** Called (deferred) by the outgoing store when MQTT.js completes an exchange. */
  onCompleted(entry: OutgoingEntry): void {
    const inflight = this.#inflight;
    if (inflight && inflight.recs[0]!.seq === entry.seqs[0]) {
      this.#inflight = undefined;
      this.#stats[Stat.inflight] = 0;
      this.#stats[Stat.exchangeStartedMs] = 0;
      this.#completed(inflight.recs, inflight.cached, entry.messageId, inflight.refusal);
      if (this.#state === 'caching') this.#setState('draining');
    } else if (entry.seqs.some((s) => this.#recoveredSeqs.has(s))) {
      for (const s of entry.seqs) this.#recoveredSeqs.delete(s);
      this.#recoveredPackets--;
      this.#completed(this.#cache.readSeqs(entry.seqs), true, entry.messageId, undefined);
    }
    this.#settleWaiters();
    this.#pump();
  }

  /**
   * The broker refused the message in flight with a reason code MQTT.js cannot parse (Mosquitto
   * 2.0 answers an over-size QoS 2 PUBLISH with PUBREC 0x95). MQTT.js drops that packet and would
   * wait forever, so the exchange is ended here, as MQTT.js does for a refusal it understands.
   */
  onUnreadableRefusal(reason: string): void {
    const inflight = this.#inflight;
    if (!inflight) return;
    const messageId = this.#store.messageIdOf(inflight.recs[0]!.seq);
    if (messageId === undefined) return;
    inflight.refusal = `refused by the broker with an unparseable reason code (${reason})`;
    const client = this.#client as unknown as { _removeOutgoingAndStoreMessage(id: number, cb: () => void): void; stream: { destroy(): void } };
    client._removeOutgoingAndStoreMessage(messageId, () => undefined);
    // The packet parser is left mid-stream by the bad packet; a fresh connection starts it clean.
    client.stream.destroy();
  }

  async requeue(id: number, seqs: number[] | undefined): Promise<void> {
    try {
      const count = await this.#cache.requeueDeadLetters(seqs);
      this.#stats[Stat.deadLettered]! -= count;
      if (count > 0 && this.#state === 'direct') {
        if (this.#inflight || this.#mem.length > 0) this.#spill('requeue');
        else this.#setState('draining');
      }
      this.#updateCacheStats();
      this.#post({ type: 'reply', id, value: count });
      this.#pump();
    } catch (err) {
      this.#post({ type: 'reply', id, error: serializeError(err, ErrorCodes.CACHE_WRITE_FAILED) });
    }
  }

  #completed(recs: Rec[], cached: boolean, messageId: number | undefined, refusal: string | undefined): void {
    this.#writer.forget(recs);
    if (refusal) {
      this.#stats[Stat.deadLettered]! += recs.length;
      this.#post({ type: 'event', name: 'dead-letter', data: { seqs: recs.map((r) => r.seq), reason: refusal } });
    } else {
      this.#stats[Stat.delivered]! += recs.length;
      this.#stats[Stat.lastDeliveredSeq] = recs[recs.length - 1]!.seq;
      this.#latencies.record(recs);
    }
    if (cached || this.#store.persistent) {
      const inCache = cached ? recs : [];
      const persisted = this.#store.persistent;
      this.#writer.remove(inCache, () => {
        if (refusal) this.#cache.deadLetterInTxn(recs, refusal);
        if (persisted && messageId !== undefined) this.#store.removePersistedInTxn(messageId);
      });
    } else if (refusal) {
      this.#writer.track(this.#cache.write(() => this.#cache.deadLetterInTxn(recs, refusal)));
    }
  }

  #onTimeout(): void {
    if (!this.#inflight) return;
    if (this.#state === 'direct') this.#spill('timeout');
    else if (this.#state === 'draining') this.#setState('caching');
  }

  /** DIRECT → CACHING: the stuck message and everything queued behind it, in one transaction. */
  #spill(reason: string): void {
    const inflight = this.#inflight;
    if (this.#state !== 'direct' || (!inflight && this.#mem.length === 0)) return;
    const recs: Rec[] = [];
    if (inflight && !inflight.cached) {
      recs.push(...inflight.recs);
      inflight.cached = true;
    }
    const queued = this.#mem.drain();
    this.#updateMemStats();
    if (!this.#journal) for (const rec of queued) recs.push(rec);
    if (recs.length > 0 || !this.#store.persistent) this.#append(recs, () => this.#store.persistInTxn());
    this.#stats[Stat.spilled]! += recs.length;
    this.#post({ type: 'event', name: 'spill', data: { messages: recs.length, reason } });
    this.#setState(inflight ? 'caching' : 'draining');
    this.#pump();
  }

  #append(recs: Rec[], alsoInTxn?: () => void): void {
    this.#writer.append(recs, alsoInTxn);
    this.#updateCacheStats();
  }

  // ── waiting and stats ─────────────────────────────────────────────────────────────────────

  /** The lowest seq that a power cut could still lose (Infinity when none). */
  #lowestVolatileSeq(): number {
    let lowest = this.#writer.lowestVolatileSeq;
    if (!this.#journal) {
      const inflight = this.#inflight;
      if (inflight && !inflight.cached) lowest = Math.min(lowest, inflight.recs[0]!.seq);
      const head = this.#mem.peek();
      if (head) lowest = Math.min(lowest, head.seq);
    }
    return lowest;
  }

  #settleWaiters(): void {
    this.#waiters.settleFlush(this.#lowestVolatileSeq());
    const idle = this.#state === 'direct' && !this.#inflight && this.#mem.length === 0 && this.#cache.messages === 0 && this.#writer.idle && this.#recoveredPackets === 0;
    if (idle) this.#waiters.settleDrained();
  }

  #setState(state: Exclude<ClientState, 'closed'>): void {
    const previous = this.#state;
    this.#state = state;
    this.#stats[Stat.state] = STATES.indexOf(state);
    if (previous === state) return;
    if (state === 'draining') {
      this.#deliveredBeforeDrain = this.#stats[Stat.delivered]!;
      this.#post({ type: 'event', name: 'drain-start', data: { cached: this.#cache.messages } });
    }
    this.#post({ type: 'state', state });
  }

  #updateMemStats(): void {
    this.#stats[Stat.memoryQueued] = this.#mem.length + this.#writer.overflowLength;
    this.#stats[Stat.memoryBytes] = this.#mem.bytes;
  }

  #updateCacheStats(): void {
    const c = this.#cache.counters;
    this.#stats[Stat.cachedMessages] = c.messages;
    this.#stats[Stat.cachedBytes] = c.bytes;
    for (let p = 0; p < 10; p++) this.#stats[Stat.byPriority + p] = c.byPriority[p] ?? 0;
    this.#stats[Stat.oldestCachedTs] = c.messages > 0 ? this.#cache.oldestTimestamp() : 0;
  }

  /** Hands over the latencies gathered since the last call. */
  takeLatencies(): number[] {
    return this.#latencies.take();
  }

  // ── shutdown ──────────────────────────────────────────────────────────────────────────────

  /** Stops intake and sending, and spills whatever is pending. Resolves when it is committed. */
  async stop(): Promise<void> {
    this.#closing = true;
    this.#spill('close');
    this.#writer.stop();
    await this.#cache.settled();
  }

  /** Waits (bounded) for the message in flight to complete, so a clean close leaves nothing mid-air. */
  async settleInflight(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.#inflight && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    clearTimeout(this.#deadline);
    await this.#cache.settled();
  }
}
