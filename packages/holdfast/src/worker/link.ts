import { Socket } from 'node:net';
import mqtt, { Store, type IClientOptions, type IClientPublishOptions, type MqttClient, type Packet } from 'mqtt';
import type { ResolvedOptions } from '../options.js';
import { Backoff } from './backoff.js';
import { classifyConnectionError, type ConnectionErrorInfo } from './connection-errors.js';
import type { DerivedMessageIds } from './message-ids.js';
import type { OutgoingStore } from './outgoing-store.js';

/** A connection that stayed up this long resets the backoff. */
const STABLE_AFTER_MS = 10_000;

export interface DisconnectInfo {
  /** True for our own DISCONNECT or a server DISCONNECT with a reason; false for a network failure. */
  clean: boolean;
  reason: string;
  /** The number of the connection that closed (see Link.connection). */
  connection: number;
}

export interface LinkHooks {
  /** CONNACK accepted. MQTT.js now resends what its outgoing store holds, one exchange at a time. */
  up(info: { connection: number; sessionPresent: boolean }): void;
  /** MQTT.js resent its whole store: a new publish() now goes straight onto the wire. */
  ready(): void;
  down(info: DisconnectInfo): void;
  /** An attempt to connect failed before any CONNACK (refused, timed out, TLS, auth). */
  unreachable(reason: string): void;
  /** A connection-level error (refused, TLS, auth): reported, never thrown. Messages carry no secrets. */
  error(info: ConnectionErrorInfo): void;
  reconnecting(delayMs: number): void;
  /** An acknowledgement of an exchange arrived, before MQTT.js acts on it. */
  acked(messageId: number, cmd: 'puback' | 'pubrec' | 'pubcomp', reasonCode: number): void;
  /**
   * The broker answered with an acknowledgement mqtt-packet cannot parse (Mosquitto 2.0 answers an
   * over-size QoS 2 PUBLISH with PUBREC 0x95, which MQTT 5 does not allow there). The parser is left
   * mid-stream, so Link has already dropped the connection.
   */
  unreadableAck(reason: string): void;
}

/** What the sender hands to publish(). */
export interface LinkPublish {
  topic: string;
  payload: Buffer | string;
  options: IClientPublishOptions;
}

/*
 * MQTT.js and Node internals, all in this file, each with the behaviour it relies on. test/mqtt-adapter.test.ts
 * fails if MQTT.js (or Node) changes any of them.
 *
 * 1. net.Socket's `_writev` / `_write` (coalesceWrites): one write per packet instead of a writev of
 *    mqtt-packet's ~12 small chunks. Relies on Writable calling `_writev` with every corked chunk.
 * 2. MQTT.js emits 'packetsend' synchronously, with the very packet object it then encodes (the
 *    outgoing store stamps a first-sent PUBLISH's properties there; see OutgoingStore.stamp).
 * 3. MQTT.js emits 'packetreceive' before it handles an acknowledgement (acked() sees a refusal before
 *    MQTT.js deletes the exchange from the store).
 * 4. MQTT.js emits 'connect' only after it has resent everything in the outgoing store (Link.ready):
 *    a publish() made earlier would wait in its `_storeProcessingQueue`, and fail with
 *    'Connection closed' if the link dropped meanwhile.
 * 5. `client.outgoing[messageId]` is MQTT.js's record of an exchange awaiting its ack; deleting it
 *    (abandon) makes MQTT.js ignore a late ack for it, as it does for any unknown id.
 * 6. mqtt-packet reports an acknowledgement with a reason code MQTT 5 does not allow as an 'error'
 *    whose message is "Invalid <type> reason code" (UNREADABLE_ACK).
 * 7. `client.stream.destroy()` closes the connection at once, and MQTT.js's 'close' follows.
 */
const UNREADABLE_ACK = /^Invalid (puback|pubrec|pubcomp) reason code/;

/**
 * The MQTT.js connection. MQTT.js does the protocol; reconnects are ours (its fixed-interval timer is
 * off) so that attempts back off exponentially with jitter, and a stuck exchange can force one.
 */
export class Link {
  readonly client: MqttClient;
  readonly #backoff: Backoff;
  readonly #hooks: LinkHooks;
  readonly #stores: { incomingStore: Store; outgoingStore: OutgoingStore };
  #reconnectTimer: NodeJS.Timeout | undefined;
  #stableTimer: NodeJS.Timeout | undefined;
  #up = false;
  #ready = false;
  #connection = 0;
  #everConnected = false;
  #ending = false;
  #serverDisconnect: string | undefined;
  #forcedReason: string | undefined;
  /** From the last CONNACK, kept while offline: sizes are checked before anything is sent. */
  #maximumPacketSize: number | undefined;
  /** The last error reported during the current attempt (reset on each new attempt). */
  #lastError: string | undefined;

  constructor(options: ResolvedOptions, store: OutgoingStore, ids: DerivedMessageIds, hooks: LinkHooks) {
    this.#hooks = hooks;
    this.#backoff = new Backoff(options.reconnect.minMs, options.reconnect.maxMs);
    this.#stores = { incomingStore: new Store(), outgoingStore: store };
    this.client = mqtt.connect(options.broker, { ...clientOptions(options, this.#stores), messageIdProvider: ids });
    this.client.on('packetreceive', (packet) => this.#onPacket(packet));
    this.client.on('packetsend', (packet) => store.stamp(packet));
    this.client.on('connect', () => {
      this.#ready = true;
      hooks.ready();
    });
    this.client.on('close', () => this.#onClose());
    this.client.on('error', (err: Error & { code?: string | number }) => this.#onError(err));
  }

  /** Whether any connection succeeded before the current one (for counting reconnects). */
  get everConnected(): boolean {
    return this.#everConnected;
  }

  get connected(): boolean {
    return this.#up;
  }

  /** Connected, and MQTT.js has resent its store: a publish() goes out at once. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Numbers each accepted connection, from 1. */
  get connection(): number {
    return this.#connection;
  }

  /** The broker's Maximum Packet Size from the last CONNACK (MQTT 5), also while offline. */
  get maximumPacketSize(): number | undefined {
    return this.#maximumPacketSize;
  }

  publish(message: LinkPublish, done: (err?: Error) => void): void {
    this.client.publish(message.topic, message.payload, message.options, done);
  }

  /** Drops the connection so MQTT.js resends the exchange in flight on a new one (MQTT allows no other resend). */
  forceReconnect(reason: string): void {
    if (!this.#up || this.#ending) return;
    this.#ready = false;
    this.#forcedReason = reason;
    this.client.stream.destroy();
  }

  /** Forgets an exchange MQTT.js still waits for (it was dead-lettered): a late ack for it is ignored. */
  abandon(messageId: number): void {
    delete this.client.outgoing[messageId];
  }

  subscribe(filter: string, options: { qos: 0 | 1 | 2; properties?: Record<string, unknown>; rh?: number }, done: (err: Error | null) => void): void {
    this.client.subscribe(filter, options as Parameters<MqttClient['subscribe']>[1], (err) => done(err ?? null));
  }

  unsubscribe(filter: string): void {
    this.client.unsubscribe(filter, () => undefined);
  }

  #onPacket(packet: Packet): void {
    switch (packet.cmd) {
      case 'connack': {
        const rc = (packet as { reasonCode?: number; returnCode?: number }).reasonCode ?? (packet as { returnCode?: number }).returnCode ?? 0;
        if (rc !== 0) return;
        const max = (packet as { properties?: { maximumPacketSize?: number } }).properties?.maximumPacketSize;
        this.#maximumPacketSize = max;
        // Each connection has a new socket; patch it before anything is published on it.
        coalesceWrites(this.client.stream);
        this.#onUp(Boolean((packet as { sessionPresent?: boolean }).sessionPresent));
        return;
      }
      case 'disconnect': {
        const rc = (packet as { reasonCode?: number }).reasonCode ?? 0;
        this.#serverDisconnect = `server DISCONNECT (reason code 0x${rc.toString(16)})`;
        return;
      }
      case 'puback':
      case 'pubrec':
      case 'pubcomp': {
        const messageId = (packet as { messageId?: number }).messageId;
        if (messageId !== undefined) this.#hooks.acked(messageId, packet.cmd, (packet as { reasonCode?: number }).reasonCode ?? 0);
        return;
      }
      default:
    }
  }

  #onError(err: Error & { code?: string | number }): void {
    if (UNREADABLE_ACK.test(err.message)) {
      // Nothing more goes on this connection: the parser is left mid-stream by the bad packet, and a
      // fresh connection starts it clean. The sender ends the exchange first, so it is not resent.
      this.#ready = false;
      this.#hooks.unreadableAck(err.message);
      this.forceReconnect(`unreadable acknowledgement (${err.message})`);
      return;
    }
    const info = classifyConnectionError(err.message, err.code);
    // One TLS failure can surface twice in one attempt (socket and MQTT.js); report it once.
    if (info.message === this.#lastError) return;
    this.#lastError = info.message;
    this.#hooks.error(info);
  }

  #onUp(sessionPresent: boolean): void {
    this.#up = true;
    this.#connection++;
    this.#lastError = undefined;
    this.#serverDisconnect = undefined;
    this.#forcedReason = undefined;
    clearTimeout(this.#stableTimer);
    this.#stableTimer = setTimeout(() => this.#backoff.reset(), STABLE_AFTER_MS);
    this.#hooks.up({ connection: this.#connection, sessionPresent });
    this.#everConnected = true;
  }

  #onClose(): void {
    clearTimeout(this.#stableTimer);
    this.#ready = false;
    if (this.#up) {
      this.#up = false;
      const clean = this.#ending || this.#serverDisconnect !== undefined;
      const reason = this.#ending ? 'client closed' : (this.#forcedReason ?? this.#serverDisconnect ?? 'network failure');
      this.#hooks.down({ clean, reason, connection: this.#connection });
    } else if (!this.#ending) {
      this.#hooks.unreachable(this.#lastError ?? 'the connection attempt failed');
    }
    if (!this.#ending && this.#reconnectTimer === undefined) {
      const delay = this.#backoff.next();
      this.#hooks.reconnecting(delay);
      this.#reconnectTimer = setTimeout(() => {
        this.#reconnectTimer = undefined;
        // Without the stores, MQTT.js's reconnect() starts from empty ones and forgets the packet in flight.
        this.#lastError = undefined;
        if (!this.#ending) this.client.reconnect(this.#stores);
      }, delay);
    }
  }

  /**
   * Ends the connection within `timeoutMs`: DISCONNECT when connected and nothing is in flight,
   * otherwise the socket is simply closed (a packet in flight stays in the store for the next run).
   */
  end(timeoutMs: number): Promise<void> {
    this.#ending = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#stableTimer);
    const graceful = this.#up && Object.keys(this.client.outgoing).length === 0;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.client.end(true, () => resolve());
      }, timeoutMs);
      this.client.end(!graceful, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function noop(): void {}

function clientOptions(o: ResolvedOptions, stores: { incomingStore: Store; outgoingStore: OutgoingStore }): IClientOptions {
  const opts: IClientOptions = {
    clientId: o.clientId,
    protocolVersion: o.protocolVersion,
    clean: o.session.clean,
    keepalive: o.keepaliveSec,
    connectTimeout: o.connectTimeoutMs,
    reconnectPeriod: 0,
    // Subscriptions are sent again by the worker, and only when the broker kept no session (Subscriber).
    resubscribe: false,
    queueQoSZero: false,
    // A PINGREQ goes out every keepalive period even while messages flow (2 bytes), instead of MQTT.js
    // clearing and setting its ping timer again on every PUBREC and PUBCOMP received.
    reschedulePings: false,
    // MQTT.js calls its debug logger a dozen times per message; unless DEBUG asks for it, skip the calls.
    ...(process.env.DEBUG ? {} : { log: noop }),
    // Otherwise mqtt-packet pre-builds a Buffer for each of the 65,536 packet ids (~6.5 MB of heap)
    // to save an allocation per packet; one message is in flight at a time, so it buys nothing.
    writeCache: false,
    ...stores,
  };
  if (o.protocolVersion === 5) {
    opts.properties = { sessionExpiryInterval: o.session.clean ? 0 : o.session.expirySec };
  }
  if (o.username !== undefined) opts.username = o.username;
  if (o.password !== undefined) opts.password = o.password;
  if (o.tls) {
    if (o.tls.ca !== undefined) opts.ca = o.tls.ca;
    if (o.tls.cert !== undefined) opts.cert = o.tls.cert;
    if (o.tls.key !== undefined) opts.key = o.tls.key;
    // Passed through to tls.connect(); MQTT.js's option type does not list it.
    if (o.tls.passphrase !== undefined) (opts as IClientOptions & { passphrase?: string }).passphrase = o.tls.passphrase;
    opts.rejectUnauthorized = o.tls.rejectUnauthorized;
  }
  return opts;
}

interface Chunk {
  chunk: Buffer | string;
  encoding: BufferEncoding;
}
type WriteCallback = (err?: Error | null) => void;
/** The Writable implementation methods net.Socket has (its @types declare them loosely). */
interface PatchableSocket {
  _writev(chunks: Chunk[], cb: WriteCallback): void;
  _write(chunk: Buffer, encoding: 'buffer', cb: WriteCallback): void;
}

/**
 * Internal 1. mqtt-packet writes a packet as many small chunks between cork() and an uncork() on the
 * next tick: a PUBLISH carrying holdfast's user property is 12 of them, four of them strings. The
 * socket turns that into one writev() with as many iovecs, each string encoded on its own, which costs
 * the worker more CPU per message than building the packet did. Copying the chunks into one buffer
 * first keeps the bytes and their order exactly as MQTT.js wrote them, in one write. Plain TCP and TLS
 * sockets only; any other stream (a SOCKS proxy) is left as it is.
 */
export function coalesceWrites(stream: unknown): void {
  if (!(stream instanceof Socket) || Object.hasOwn(stream, '_writev')) return;
  const socket = stream as unknown as PatchableSocket;
  const writev = socket._writev;
  socket._writev = function (this: PatchableSocket, chunks: Chunk[], cb: WriteCallback): void {
    if (chunks.length < 2) return writev.call(this, chunks, cb);
    let size = 0;
    for (const { chunk, encoding } of chunks) size += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
    const joined = Buffer.allocUnsafe(size);
    let offset = 0;
    for (const { chunk, encoding } of chunks) offset += typeof chunk === 'string' ? joined.write(chunk, offset, encoding) : chunk.copy(joined, offset);
    this._write(joined, 'buffer', cb);
  };
}
