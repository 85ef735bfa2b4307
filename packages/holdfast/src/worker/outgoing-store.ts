import { Readable } from 'node:stream';
import type { IPublishPacket, IStore } from 'mqtt';
import type { Cache } from './cache.js';
import type { PublishProperties } from './packet.js';

type Packet = Parameters<IStore['put']>[0];

/** A packet MQTT.js has in flight, with the seqs it carries (one, or a bulk's readings). */
export interface OutgoingEntry {
  messageId: number;
  seqs: number[];
  packet: Packet;
  /** Set when the broker refused it (PUBREC or PUBACK with a reason code ≥ 0x80). */
  refusal: string | undefined;
}

type Callback = (err?: Error, packet?: Packet) => void;

/** How long to wait before committing an in-flight packet again after a failed write (disk full). */
const PERSIST_RETRY_MS = 1000;

/**
 * MQTT.js's outgoing store (its `IStore` seam), kept in memory while the link is healthy and in LMDB
 * from the moment of a spill (or always, in journal mode). Persisted, the in-flight PUBLISH or PUBREL
 * survives a power cut with its packet id, and MQTT.js resends it after a restart, so a broker with a
 * persistent session de-duplicates it. It also holds each PUBLISH's MQTT 5 properties, which
 * publish() is not given (see expect() and stamp()).
 *
 * `del` is MQTT.js saying the exchange completed (PUBCOMP, or PUBACK at QoS 1): that is the one source
 * of truth for delivery, whether the packet was sent in this run or recovered from the last.
 */
export class OutgoingStore implements IStore {
  readonly #entries = new Map<number, OutgoingEntry>();
  readonly #cache: Cache;
  readonly #onCompleted: (entry: OutgoingEntry) => void;
  #persistent = false;
  #closed = false;
  #nextSeqs: number[] | undefined;
  #nextProperties: PublishProperties;

  constructor(cache: Cache, onCompleted: (entry: OutgoingEntry) => void) {
    this.#cache = cache;
    this.#onCompleted = onCompleted;
  }

  /**
   * Loads packets left in flight by the previous run; they will be resent before anything else. A
   * persisted packet that cannot be opened is dropped and reported: its readings are still in the
   * cache and go out fresh (at least once).
   */
  recover(): { entries: OutgoingEntry[]; unreadable: Array<{ messageId: number; seqs: number[]; reason: string }> } {
    const { entries, unreadable } = this.#cache.outgoing.list();
    for (const entry of entries) this.#entries.set(entry.messageId, entry);
    if (unreadable.length > 0) void this.#cache.write(() => unreadable.forEach((u) => this.#cache.outgoing.removeInTxn(u.messageId)));
    if (this.#entries.size > 0) this.#persistent = true;
    return { entries, unreadable };
  }

  /** The broker refused this exchange: MQTT.js deletes it next, and del() reports the refusal. */
  markRefused(messageId: number, reason: string): void {
    const entry = this.#entries.get(messageId);
    if (entry) entry.refusal = reason;
  }

  entry(messageId: number): OutgoingEntry | undefined {
    return this.#entries.get(messageId);
  }

  /** The entry carrying this seq, if MQTT.js has it. */
  entryOf(seq: number): OutgoingEntry | undefined {
    for (const entry of this.#entries.values()) if (entry.seqs.includes(seq)) return entry;
    return undefined;
  }

  /**
   * Drops an exchange that was dead-lettered while MQTT.js still held it (it made the broker drop the
   * connection again and again, or its acknowledgement was unreadable), so it is not resent on the
   * next connection. The persisted copy goes with removePersistedInTxn, in the dead-letter transaction.
   */
  forget(messageId: number): void {
    this.#entries.delete(messageId);
  }

  get persistent(): boolean {
    return this.#persistent;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Tells the store which seqs the next PUBLISH carries (one message is in flight at a time), and its
   * MQTT 5 properties, which publish() is not given (see OutgoingPublish.properties). Holdfast
   * publishes at QoS 1 or 2 only: a QoS 0 PUBLISH never reaches put().
   */
  expect(seqs: number[], properties: PublishProperties): void {
    this.#nextSeqs = seqs;
    this.#nextProperties = properties;
  }

  /**
   * Gives a PUBLISH about to be encoded the properties of its stored copy. MQTT.js stores a clone of
   * each PUBLISH before writing the original, so only the copy got them in put(). Packets resent from
   * the store (after a reconnect or a restart) are the stored copies and carry them already.
   */
  stamp(packet: Packet): void {
    if (packet.cmd !== 'publish' || packet.properties !== undefined) return;
    const stored = this.#entries.get(packet.messageId ?? -1)?.packet as IPublishPacket | undefined;
    if (stored?.properties !== undefined) packet.properties = stored.properties;
  }

  /** Switches to LMDB; call inside a cache transaction so the switch commits with the spill. */
  persistInTxn(): void {
    this.#persistent = true;
    for (const entry of this.#entries.values()) this.#cache.outgoing.putInTxn(entry);
  }

  /**
   * From now on every packet is committed before it goes on the wire (journal mode always; spill mode
   * while it sends from the cache). Call only with nothing in flight, or use persistInTxn.
   */
  persistFromNow(): void {
    this.#persistent = true;
  }

  /** Back to memory (the link is healthy again and nothing is in flight from the cache). */
  unpersist(): Promise<void> {
    if (!this.#persistent) return Promise.resolve();
    this.#persistent = false;
    return this.#cache.write(() => this.#cache.outgoing.clearInTxn());
  }

  /** For use inside the transaction that removes the delivered records. */
  removePersistedInTxn(messageId: number): void {
    this.#cache.outgoing.removeInTxn(messageId);
  }

  put(packet: Packet, cb: (err?: Error) => void): this {
    const messageId = (packet as { messageId?: number }).messageId;
    if (messageId === undefined) {
      cb();
      return this;
    }
    const previous = this.#entries.get(messageId);
    const seqs = previous?.seqs ?? this.#nextSeqs ?? [];
    if (!previous) {
      // The first put of a PUBLISH is the one publish() just made: it is the packet expect() described.
      if (packet.cmd === 'publish' && this.#nextProperties !== undefined) packet.properties = this.#nextProperties;
      this.#nextSeqs = undefined;
      this.#nextProperties = undefined;
    }
    const entry: OutgoingEntry = { messageId, seqs, packet, refusal: previous?.refusal };
    this.#entries.set(messageId, entry);
    if (!this.#persistent) {
      cb();
      return this;
    }
    this.#persist(entry, cb);
    return this;
  }

  /**
   * The packet goes on the wire only after this commit: a power cut can never leave a sent packet
   * unrecorded. When the commit fails (disk full) the packet goes out anyway, and is committed once
   * there is room: holding it back would wedge the queue (MQTT.js drops a store error for a publish
   * without a word, and would neither send it nor free its id), and while the disk is full the client
   * is degraded to at least once for this packet, which a crash could resend from the cache.
   */
  #persist(entry: OutgoingEntry, cb: (err?: Error) => void): void {
    this.#commit(entry).then(
      () => cb(),
      () => {
        cb();
        this.#persistLater(entry);
      },
    );
  }

  #persistLater(entry: OutgoingEntry): void {
    setTimeout(() => {
      if (this.#closed || this.#entries.get(entry.messageId) !== entry) return;
      this.#commit(entry).catch(() => this.#persistLater(entry));
    }, PERSIST_RETRY_MS).unref();
  }

  /** Commits the entry unless it completed meanwhile (its removal is ordered after, or already done). */
  #commit(entry: OutgoingEntry): Promise<void> {
    return this.#cache.write(() => {
      if (this.#entries.get(entry.messageId) === entry) this.#cache.outgoing.putInTxn(entry);
    });
  }

  del(packet: Pick<Packet, 'messageId'>, cb: Callback): this {
    const messageId = packet.messageId ?? -1;
    const entry = this.#entries.get(messageId);
    if (!entry) {
      cb(new Error('missing packet'));
      return this;
    }
    this.#entries.delete(messageId);
    cb(undefined, entry.packet);
    // MQTT.js is still inside its ack handling; the owner acts once it is done. A refusal was marked
    // on the entry before MQTT.js got here (Link's acked hook sees every ack first). The owner removes
    // the persisted copy together with the delivered records, in one transaction.
    queueMicrotask(() => this.#onCompleted(entry));
    return this;
  }

  get(packet: Pick<Packet, 'messageId'>, cb: Callback): this {
    const entry = this.#entries.get(packet.messageId ?? -1);
    if (entry) cb(undefined, entry.packet);
    else cb(new Error('missing packet'));
    return this;
  }

  createStream(): ReturnType<IStore['createStream']> {
    // MQTT.js types this as readable-stream's Readable; it only uses read(), events and destroy().
    const stream = Readable.from(
      [...this.#entries.values()].map((e) => e.packet),
      { objectMode: true },
    );
    return stream as unknown as ReturnType<IStore['createStream']>;
  }

  close(cb: (err?: Error) => void): void {
    this.#closed = true;
    cb();
  }
}
