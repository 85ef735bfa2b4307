import mqtt, { Store, type IClientOptions, type MqttClient } from 'mqtt';
import type { ResolvedOptions } from '../options.js';
import { Backoff } from './backoff.js';
import { coalesceWrites } from './coalesce.js';
import { classifyConnectionError, type ConnectionErrorInfo } from './connection-errors.js';
import type { OutgoingStore } from './outgoing-store.js';

/** A connection that stayed up this long resets the backoff. */
const STABLE_AFTER_MS = 10_000;

export interface DisconnectInfo {
  /** True for our own DISCONNECT or a server DISCONNECT with a reason; false for a network failure. */
  clean: boolean;
  reason: string;
}

export interface LinkHooks {
  up(): void;
  down(info: DisconnectInfo): void;
  /** A connection-level error (refused, TLS, auth): reported, never thrown. Messages carry no secrets. */
  error(info: ConnectionErrorInfo): void;
  reconnecting(delayMs: number): void;
}

/**
 * The MQTT.js connection. MQTT.js does the protocol; reconnects are ours (its fixed-interval timer is
 * off) so that attempts back off exponentially with jitter.
 */
export class Link {
  readonly client: MqttClient;
  readonly #backoff: Backoff;
  readonly #hooks: LinkHooks;
  readonly #stores: { incomingStore: Store; outgoingStore: OutgoingStore };
  #reconnectTimer: NodeJS.Timeout | undefined;
  #stableTimer: NodeJS.Timeout | undefined;
  #up = false;
  #everConnected = false;
  #ending = false;
  #serverDisconnect: string | undefined;
  /** The last error reported during the current attempt (reset on each new attempt). */
  #lastError: string | undefined;

  constructor(options: ResolvedOptions, store: OutgoingStore, hooks: LinkHooks) {
    this.#hooks = hooks;
    this.#backoff = new Backoff(options.reconnect.minMs, options.reconnect.maxMs);
    this.#stores = { incomingStore: new Store(), outgoingStore: store };
    this.client = mqtt.connect(options.broker, clientOptions(options, this.#stores));
    this.client.on('packetreceive', (packet) => {
      if (packet.cmd === 'connack') {
        const rc = (packet as { reasonCode?: number; returnCode?: number }).reasonCode ?? (packet as { returnCode?: number }).returnCode ?? 0;
        if (rc === 0) {
          // Each connection has a new socket; patch it before anything is published on it.
          coalesceWrites(this.client.stream);
          this.#onUp();
        }
      } else if (packet.cmd === 'disconnect') {
        const rc = (packet as { reasonCode?: number }).reasonCode ?? 0;
        this.#serverDisconnect = `server DISCONNECT (reason code 0x${rc.toString(16)})`;
      }
    });
    // Emitted synchronously just before MQTT.js encodes a packet: a first-sent PUBLISH gets its stored copy's properties.
    this.client.on('packetsend', (packet) => store.stamp(packet));
    this.client.on('close', () => this.#onClose());
    this.client.on('error', (err: Error & { code?: string | number }) => {
      const info = classifyConnectionError(err.message, err.code);
      // One TLS failure can surface twice in one attempt (socket and MQTT.js); report it once.
      if (info.message === this.#lastError) return;
      this.#lastError = info.message;
      hooks.error(info);
    });
  }

  /** Whether any connection succeeded before the current one (for counting reconnects). */
  get everConnected(): boolean {
    return this.#everConnected;
  }

  get connected(): boolean {
    return this.#up;
  }

  /** The broker's limits from CONNACK (MQTT 5), when known. */
  get serverMaximumPacketSize(): number | undefined {
    return (this.client as unknown as { _serverProperties?: { maximumPacketSize?: number } })._serverProperties?.maximumPacketSize;
  }

  #onUp(): void {
    this.#up = true;
    this.#lastError = undefined;
    this.#serverDisconnect = undefined;
    clearTimeout(this.#stableTimer);
    this.#stableTimer = setTimeout(() => this.#backoff.reset(), STABLE_AFTER_MS);
    this.#hooks.up();
    this.#everConnected = true;
  }

  #onClose(): void {
    clearTimeout(this.#stableTimer);
    if (this.#up) {
      this.#up = false;
      const clean = this.#ending || this.#serverDisconnect !== undefined;
      this.#hooks.down({ clean, reason: this.#ending ? 'client closed' : (this.#serverDisconnect ?? 'network failure') });
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
    resubscribe: true,
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
