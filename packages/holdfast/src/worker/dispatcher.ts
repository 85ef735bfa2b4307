import type { ResolvedOptions } from '../options.js';
import type { FromWorker } from '../protocol.js';
import type { Cache } from './cache.js';
import type { CacheWriter } from './cache-writer.js';
import type { DeliveryLedger } from './delivery-ledger.js';
import { Exchange, InFlight } from './exchange.js';
import { LatencySampler } from './latency.js';
import type { LinkPublish } from './link.js';
import type { DerivedMessageIds } from './message-ids.js';
import type { OutgoingEntry, OutgoingStore } from './outgoing-store.js';
import { buildFitting } from './packet.js';
import { describeRefusal, isRefusal } from './reason-codes.js';
import type { SenderStats } from './sender-stats.js';

/** What the dispatcher needs of the connection (Link). */
export interface DispatchLink {
  readonly ready: boolean;
  readonly connected: boolean;
  readonly connection: number;
  readonly maximumPacketSize: number | undefined;
  publish(message: LinkPublish, done: (err?: Error) => void): void;
  forceReconnect(reason: string): void;
  abandon(messageId: number): void;
}

export interface DispatchHooks {
  /** The exchange ended (delivered, or dead-lettered): the slot is free. */
  settled(exchange: Exchange, delivered: boolean): void;
  /** MQTT.js dropped the exchange before storing it: its records go back where they came from. */
  unsent(exchange: Exchange): void;
  /** The exchange has had no PUBCOMP for timeoutMs. */
  timedOut(): void;
}

export interface DispatcherDeps {
  options: ResolvedOptions;
  cache: Cache;
  writer: CacheWriter;
  ledger: DeliveryLedger;
  ids: DerivedMessageIds;
  /** Whether an exchange sent from memory records its PUBREC durably too (journal mode). */
  progressInDirect: boolean;
  store: OutgoingStore;
  link: DispatchLink;
  stats: SenderStats;
  post: (msg: FromWorker) => void;
  hooks: DispatchHooks;
}

/**
 * The exchange on the wire and how it ends: it sends one exchange at a time through MQTT.js, hears
 * every acknowledgement, and ends the exchange exactly once: delivered (PUBCOMP / PUBACK), or
 * dead-lettered (refused with a reason code ≥ 0x80, larger than the broker allows, an unreadable
 * acknowledgement, or in flight at deadLetterAfterDisconnects drops in a row). Its watchdog forces a
 * reconnect when a live connection makes no progress, so a lost PUBREC or PUBCOMP never wedges the queue.
 */
export class Dispatcher {
  readonly inflight: InFlight;
  readonly latencies = new LatencySampler();
  /** Exchanges the previous run left in flight, behind the one in the slot, in the order MQTT.js resends them. */
  readonly #recovered: Exchange[] = [];
  readonly #o: ResolvedOptions;
  readonly #cache: Cache;
  readonly #writer: CacheWriter;
  readonly #ledger: DeliveryLedger;
  readonly #ids: DerivedMessageIds;
  readonly #progressInDirect: boolean;
  /** Recovered packets a format-2 cache kept in its outgoing table: removed from it once they end. */
  readonly #legacy = new Set<number>();
  readonly #store: OutgoingStore;
  readonly #link: DispatchLink;
  readonly #stats: SenderStats;
  readonly #post: (msg: FromWorker) => void;
  readonly #hooks: DispatchHooks;

  constructor(deps: DispatcherDeps) {
    ({ options: this.#o, cache: this.#cache, writer: this.#writer, ledger: this.#ledger, ids: this.#ids, progressInDirect: this.#progressInDirect } = deps);
    ({ store: this.#store, link: this.#link, stats: this.#stats, post: this.#post, hooks: this.#hooks } = deps);
    this.inflight = new InFlight(this.#o.timeoutMs, this.#o.watchdogMs, {
      timedOut: () => this.#hooks.timedOut(),
      stuck: (exchange, silentMs) => this.#onStuck(exchange, silentMs),
    });
  }

  get busy(): boolean {
    return this.inflight.current !== undefined;
  }

  /**
   * Packets the last run left in flight: MQTT.js resends them on connect, before anything new.
   * `legacy` are those a format-2 cache kept in its outgoing table.
   */
  recover(entries: readonly OutgoingEntry[], legacy: readonly number[] = []): void {
    for (const id of legacy) this.#legacy.add(id);
    for (const entry of entries) {
      const exchange = new Exchange(entry.seqs, this.#cache.records.readSeqs(entry.seqs), true, entry.messageId);
      if (this.inflight.current) this.#recovered.push(exchange);
      else this.inflight.begin(exchange, undefined);
    }
  }

  /** In flight (or left in flight by the last run): never evicted. */
  carries(seq: number): boolean {
    const exchange = this.inflight.current;
    if (exchange && seq >= exchange.firstSeq && seq <= exchange.lastSeq && exchange.seqs.includes(seq)) return true;
    return this.#recovered.some((e) => e.seqs.includes(seq));
  }

  send(exchange: Exchange, asBulk: boolean): void {
    const limit = this.#link.maximumPacketSize;
    const fitted = buildFitting(exchange.recs, asBulk, this.#o, limit);
    if (!fitted.packet) {
      // The broker announced it would refuse this (CONNACK Maximum Packet Size): a poison message.
      return this.#finish(exchange, `packet of about ${fitted.size} bytes exceeds the broker's maximum packet size (${limit})`, undefined);
    }
    // A bulk split to fit: the rest stays in the cache for the next read.
    if (fitted.count < exchange.recs.length) exchange = new Exchange(exchange.seqs.slice(0, fitted.count), exchange.recs.slice(0, fitted.count), exchange.cached);
    this.inflight.begin(exchange, this.#link.connection);
    this.#stats.inflight(exchange.seqs.length);
    this.#store.expect([...exchange.seqs], fitted.packet.properties);
    this.#ids.nextPublish(exchange.firstSeq);
    this.#link.publish(fitted.packet, (err) => {
      // Completion and refusal arrive through the store and acked(); an error without a reason code
      // while the store never got the packet means MQTT.js gave up on it before sending: send it again.
      if (!err || typeof (err as { code?: unknown }).code === 'number') return;
      if (this.inflight.current === exchange && !this.#store.entryOf(exchange.firstSeq)) {
        this.inflight.end();
        this.#stats.inflight(0);
        this.#hooks.unsent(exchange);
      }
    });
  }

  /** Every acknowledgement, before MQTT.js acts on it. Below 0x80 is success (0x10: no subscribers). */
  acked(messageId: number, cmd: 'puback' | 'pubrec' | 'pubcomp', reasonCode: number): void {
    // A PUBCOMP follows a PUBREC that succeeded: whatever it carries (0x92 for a PUBREL resent after a
    // reconnect: the broker had already completed it), the message was delivered.
    if (isRefusal(reasonCode) && cmd !== 'pubcomp') this.#store.markRefused(messageId, describeRefusal(cmd, reasonCode));
    const exchange = this.inflight.current;
    if (exchange && (exchange.recoveredId ?? this.#store.entryOf(exchange.firstSeq)?.messageId) === messageId) this.inflight.progressed();
  }

  /**
   * A PUBREC arrived and the PUBREL waits for this: an exchange of cached readings (or any, in journal
   * mode) is recorded as done, durably, first. Undefined when nothing needs to be written.
   */
  pubrec(entry: OutgoingEntry): Promise<void> | undefined {
    const exchange = this.#exchangeOf(entry);
    if (!exchange || exchange.seqs.length === 0 || (!exchange.cached && !this.#progressInDirect)) return undefined;
    return this.#ledger.recordPubrec(entry.messageId, exchange.firstSeq, exchange.lastSeq);
  }

  /**
   * The exchange in flight is being spilled to the cache. If its PUBREC already came (MQTT.js holds
   * its PUBREL), that is recorded now: after a power cut the PUBREL is resent, never the PUBLISH.
   */
  spilling(): void {
    const exchange = this.inflight.current;
    const entry = exchange ? this.#entryOf(exchange) : undefined;
    if (!exchange || !entry || entry.packet.cmd !== 'pubrel' || exchange.seqs.length === 0) return;
    this.#ledger.guard(this.#ledger.recordPubrec(entry.messageId, exchange.firstSeq, exchange.lastSeq));
  }

  /** Called (deferred) by the outgoing store when MQTT.js completes an exchange, or ends a refused one. */
  completed(entry: OutgoingEntry): void {
    const exchange = this.#exchangeOf(entry);
    if (!exchange) return;
    // A packet left by the last run may be resent out of the order they were loaded in.
    const index = this.#recovered.indexOf(exchange);
    if (index >= 0) this.#recovered.splice(index, 1);
    this.#finish(exchange, entry.refusal, entry.messageId, entry.packet.cmd === 'pubrel' ? 'pubcomp' : 'puback');
  }

  /** An acknowledgement mqtt-packet could not parse ends the exchange in flight as refused. */
  unreadableAck(reason: string): void {
    const exchange = this.inflight.current;
    if (exchange) this.#abandon(exchange, `refused by the broker with an unparseable reason code (${reason})`);
  }

  linkUp(connection: number): void {
    // MQTT.js resends the exchange in flight first thing on the new connection: its clocks restart.
    if (this.inflight.current) this.inflight.sent(connection);
    this.inflight.connectionOpened();
  }

  /** A connection closed: the exchange on it may be what makes the broker drop it. */
  linkDown(connection: number, reason: string): void {
    const dropped = this.inflight.connectionClosed(connection);
    const exchange = this.inflight.current;
    if (exchange && dropped >= this.#o.deadLetterAfterDisconnects) {
      this.#abandon(exchange, `the broker closed the connection ${dropped} times in a row while this message was in flight (last: ${reason})`);
    }
  }

  stop(): void {
    this.inflight.stop();
  }

  /** Dead-letters the exchange while MQTT.js still holds it, so it is never resent. */
  #exchangeOf(entry: OutgoingEntry): Exchange | undefined {
    const isIt = (e: Exchange): boolean => (e.recoveredId !== undefined ? e.recoveredId === entry.messageId : e.firstSeq === entry.seqs[0]);
    const current = this.inflight.current;
    return current && isIt(current) ? current : this.#recovered.find(isIt);
  }

  #entryOf(exchange: Exchange): OutgoingEntry | undefined {
    return exchange.recoveredId !== undefined ? this.#store.entry(exchange.recoveredId) : this.#store.entryOf(exchange.firstSeq);
  }

  #abandon(exchange: Exchange, reason: string): void {
    const entry = this.#entryOf(exchange);
    if (entry) {
      this.#store.forget(entry.messageId);
      this.#link.abandon(entry.messageId);
    }
    this.#finish(exchange, reason, entry?.messageId);
  }

  /**
   * Ends an exchange: delivered, or dead-lettered with `refusal`. Delivered cached records leave the
   * cache with the ledger's next batch; a dead letter moves at once, and no progress write may overtake it.
   */
  #finish(exchange: Exchange, refusal: string | undefined, messageId: number | undefined, acked?: 'puback' | 'pubcomp'): void {
    if (this.inflight.current === exchange) this.inflight.end();
    this.#stats.inflight(0);
    const recs = exchange.recs;
    this.#writer.forget(recs);
    const legacy = messageId !== undefined && this.#legacy.delete(messageId);
    if (refusal) {
      this.#stats.deadLettered(exchange.seqs.length);
      this.#post({ type: 'event', name: 'dead-letter', data: { seqs: [...exchange.seqs], reason: refusal } });
      this.#ledger.forgetRequeued(exchange.seqs);
      this.#ledger.guard(
        this.#writer.remove(exchange.cached ? recs : [], () => {
          this.#cache.dead.putInTxn(recs, refusal);
          this.#cache.requeued.removeInTxn(exchange.seqs);
          if (legacy) this.#cache.outgoing.removeInTxn(messageId);
        }),
      );
    } else {
      this.#stats.delivered(exchange);
      this.latencies.record(recs);
      const seqs = exchange.seqs;
      // QoS 1 has no PUBREL, so no progress write yet: it is written now, on its way (journal mode
      // replays from the intake log what the floor does not cover, so it matters there too).
      if (acked === 'puback' && seqs.length > 0 && (exchange.cached || this.#progressInDirect)) this.#ledger.recordAck(exchange.lastSeq);
      if (legacy) {
        // A format-2 cache's packet: its exchange wrote no progress, so no floor covers its records.
        this.#ledger.guard(this.#writer.remove(recs, () => this.#cache.outgoing.removeInTxn(messageId)));
      } else if (exchange.cached && seqs.length > 0) {
        this.#ledger.completed(seqs, recs);
      }
    }
    const next = this.#recovered.shift();
    if (next) this.inflight.begin(next, this.#link.connected ? this.#link.connection : undefined);
    this.#hooks.settled(exchange, refusal === undefined);
  }

  #onStuck(exchange: Exchange, silentMs: number): void {
    const reason = `watchdog: no acknowledgement for ${Math.round(silentMs)} ms on a live connection; reconnecting to resend`;
    this.#post({ type: 'event', name: 'watchdog', data: { seqs: [...exchange.seqs], silentMs: Math.round(silentMs) } });
    this.#link.forceReconnect(reason);
  }
}
