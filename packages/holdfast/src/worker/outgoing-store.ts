import { Readable } from 'node:stream';
import type { IPublishPacket, IStore } from 'mqtt';
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

export interface OutgoingStoreHooks {
  /** MQTT.js completed an exchange (PUBCOMP, or PUBACK at QoS 1), or ended a refused one. */
  completed(entry: OutgoingEntry): void;
  /**
   * A PUBREC arrived and MQTT.js is about to send PUBREL: the promise (when the exchange must survive a
   * power cut) resolves once that is durable, and the PUBREL waits for it.
   */
  pubrec(entry: OutgoingEntry): Promise<void> | undefined;
}

/**
 * MQTT.js's outgoing store (its `IStore` seam), in memory. Nothing in it is written to disk: a
 * reading's packet id is derived from its seq (message-ids.ts) and the reading itself is in the cache
 * or the intake log, so a PUBLISH needs no durable copy; the one durable write of an exchange is the
 * PUBREC's, made by the DeliveryLedger before the PUBREL goes out (the `pubrec` hook). It also holds
 * each PUBLISH's MQTT 5 properties, which publish() is not given (see expect() and stamp()).
 *
 * `del` is MQTT.js saying the exchange completed: the one source of truth for delivery, whether the
 * packet was sent in this run or recovered from the last.
 */
export class OutgoingStore implements IStore {
  readonly #entries = new Map<number, OutgoingEntry>();
  readonly #hooks: OutgoingStoreHooks;
  #nextSeqs: number[] | undefined;
  #nextProperties: PublishProperties;

  constructor(hooks: OutgoingStoreHooks) {
    this.#hooks = hooks;
  }

  /**
   * Packets MQTT.js must resend first when it connects (PUBRELs the last run may have left waiting, or
   * packets a format-2 cache kept): they go out before anything else, with their own ids.
   */
  recover(entries: readonly OutgoingEntry[]): void {
    for (const entry of entries) this.#entries.set(entry.messageId, entry);
  }

  get size(): number {
    return this.#entries.size;
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

  /** Drops an exchange that was dead-lettered while MQTT.js still held it, so it is not resent. */
  forget(messageId: number): void {
    this.#entries.delete(messageId);
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
   * the store (after a reconnect) are the stored copies and carry them already.
   */
  stamp(packet: Packet): void {
    if (packet.cmd !== 'publish' || packet.properties !== undefined) return;
    const stored = this.#entries.get(packet.messageId ?? -1)?.packet as IPublishPacket | undefined;
    if (stored?.properties !== undefined) packet.properties = stored.properties;
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
    const durable = packet.cmd === 'pubrel' ? this.#hooks.pubrec(entry) : undefined;
    if (durable) {
      // A failed write (disk full) does not hold the PUBREL back: that would wedge the exchange. The
      // ledger reports it; the exchange is then only at least once across a power cut.
      durable.then(
        () => cb(),
        () => cb(),
      );
    } else {
      cb();
    }
    return this;
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
    // on the entry before MQTT.js got here (Link's acked hook sees every ack first).
    queueMicrotask(() => this.#hooks.completed(entry));
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
    cb();
  }
}

/** The PUBREL MQTT.js resends for an exchange the last run left waiting for its PUBCOMP. */
export function pubrelEntry(messageId: number, seqs: number[]): OutgoingEntry {
  return { messageId, seqs, packet: { cmd: 'pubrel', qos: 2, messageId } as Packet, refusal: undefined };
}
