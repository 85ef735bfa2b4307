import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { ProxiedConnection, type Direction, type LinkFaults, type PacketFaultCounts, type PacketRule } from './link-pipe.js';
import { PacketType, type PacketName } from './mqtt-frames.js';
import { LOOPBACK } from './ports.js';

/*
 * A TCP proxy between a client and a broker that can misbehave like a field link:
 * reset connections, refuse new ones, stall (hold bytes, as TCP does under packet loss)
 * and add one-way latency; and like a misbehaving broker or client: lose, repeat or
 * delay single MQTT packets, and reset the connection on a forbidden topic.
 */

export type { Direction, PacketFaultCounts } from './link-pipe.js';
export type { PacketName } from './mqtt-frames.js';

/** A per-packet fault armed on the proxy; it disarms itself after `count` packets. */
export interface PacketFault {
  readonly direction: Direction;
  readonly type: PacketName;
  readonly action: 'drop' | 'duplicate' | 'delay';
  /** Packets it has acted on so far. */
  readonly applied: number;
  /** Packets it will still act on. */
  readonly remaining: number;
  /** Disarm it now; packets already delayed still go out when due. */
  cancel(): void;
}

export interface LinkProxyOptions {
  /** Default 127.0.0.1. */
  targetHost?: string;
  targetPort: number;
  /** Default: a free port chosen by the kernel. */
  listenPort?: number;
}

export interface LinkProxy {
  readonly port: number;
  /** mqtt://127.0.0.1:<port> */
  readonly url: string;
  /** Reset (RST) every open connection, both sides. */
  reset(): void;
  /** on: stop listening (connects get ECONNREFUSED) and reset open connections; off: listen again on the same port. */
  refuse(on: boolean): Promise<void>;
  /** Hold bytes in both directions without closing; off delivers the held bytes in order. */
  stall(on: boolean): void;
  /** Delay every chunk by this much in each direction, preserving order. */
  setLatency(oneWayMs: number): void;
  /** reset + refuse for `ms`, then accept again. */
  outage(ms: number): Promise<void>;
  /** stall for `ms`, then deliver. */
  stallFor(ms: number): Promise<void>;
  /**
   * Broker→client only: hold the stream from the next packet of this MQTT type (e.g. 'pubcomp') on,
   * as if that packet were lost; `undefined` releases what was held, in order.
   */
  holdDownstreamAt(type: 'publish' | 'puback' | 'pubrec' | 'pubrel' | 'pubcomp' | undefined): void;
  /** Whether a packet armed with holdDownstreamAt() has been seen and is being held. */
  readonly holdingDownstream: boolean;
  /**
   * Lose the next `count` packets of `type` going `direction`, cut cleanly out of the byte stream:
   * the connection, and every other packet (PINGREQ/PINGRESP included), keeps flowing. E.g.
   * `dropPackets('to-client', 'pubrec')` is a broker whose PUBREC never arrives. Faults are
   * proxy-wide: whichever connection carries the next matching packet gets it. Default count 1.
   */
  dropPackets(direction: Direction, type: PacketName, count?: number): PacketFault;
  /** Send each of the next `count` packets of `type` going `direction` twice, back to back. Default count 1. */
  duplicatePackets(direction: Direction, type: PacketName, count?: number): PacketFault;
  /**
   * Hold each of the next `count` packets of `type` going `direction` for `delayMs`, then send it.
   * Packets behind it overtake it (it is re-inserted at the next packet boundary once due): this is
   * a peer slow to answer one exchange on a live connection, not a slow link (that is setLatency()).
   * A delayed packet whose connection closes meanwhile is lost with it. Default count 1.
   */
  delayPackets(direction: Direction, type: PacketName, delayMs: number, count?: number): PacketFault;
  /**
   * Reset the connection (both sides, RST) when the client sends a PUBLISH whose topic matches
   * `filter` (MQTT wildcards `+` and `#`), before the broker sees it: what AWS IoT Core does for an
   * unauthorized topic. Every call adds a filter; `undefined` clears them all. A PUBLISH that names
   * its topic only by an MQTT 5 topic alias is not matched.
   */
  disconnectOnTopic(filter: string | undefined): void;
  /** Totals of the per-packet faults applied since the proxy started. */
  readonly packetFaults: Readonly<PacketFaultCounts>;
  /** Currently open client connections. */
  readonly connections: number;
  /** performance.now() of every accepted client connection, in order. */
  readonly attempts: readonly number[];
  close(): Promise<void>;
}

class FaultyLink implements LinkProxy {
  private readonly faults: LinkFaults = {
    stalled: false,
    latencyMs: 0,
    holdDownstreamAt: undefined,
    downstreamHeld: false,
    packetRules: [],
    forbiddenTopics: [],
    counts: { dropped: 0, duplicated: 0, delayed: 0, topicResets: 0 },
  };
  private readonly open = new Set<ProxiedConnection>();
  private readonly accepted: number[] = [];
  private listening = false;
  private closed = false;
  private readonly server: net.Server;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    private listenPort: number,
  ) {
    // Half-open on both sides: a FIN is forwarded behind the data (and held by a stall, as a dead link
    // would), never answered by the proxy itself.
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  get port(): number {
    return this.listenPort;
  }

  get url(): string {
    return `mqtt://${LOOPBACK}:${this.listenPort}`;
  }

  holdDownstreamAt(type: keyof typeof PacketType | undefined): void {
    if (type !== undefined) {
      this.faults.holdDownstreamAt = PacketType[type];
      return;
    }
    this.faults.holdDownstreamAt = undefined;
    this.faults.downstreamHeld = false;
    for (const c of this.open) c.releaseHeld();
  }

  get holdingDownstream(): boolean {
    return this.faults.downstreamHeld;
  }

  dropPackets(direction: Direction, type: PacketName, count = 1): PacketFault {
    return this.arm(direction, type, 'drop', 0, count);
  }

  duplicatePackets(direction: Direction, type: PacketName, count = 1): PacketFault {
    return this.arm(direction, type, 'duplicate', 0, count);
  }

  delayPackets(direction: Direction, type: PacketName, delayMs: number, count = 1): PacketFault {
    if (!(delayMs >= 0) || !Number.isFinite(delayMs)) throw new RangeError(`delayPackets: delayMs must be a finite number >= 0; got ${delayMs}`);
    return this.arm(direction, type, 'delay', delayMs, count);
  }

  private arm(direction: Direction, type: PacketName, action: PacketRule['action'], delayMs: number, count: number): PacketFault {
    if (direction !== 'to-broker' && direction !== 'to-client') throw new RangeError(`direction must be 'to-broker' or 'to-client'; got ${String(direction)}`);
    if (!Object.hasOwn(PacketType, type)) throw new RangeError(`unknown MQTT packet type ${String(type)} (known: ${Object.keys(PacketType).join(', ')})`);
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be an integer >= 1; got ${count}`);
    const rule: PacketRule = { direction, type: PacketType[type], action, delayMs, remaining: count, applied: 0 };
    this.faults.packetRules.push(rule);
    const rules = this.faults.packetRules;
    return {
      direction,
      type,
      action,
      get applied() {
        return rule.applied;
      },
      get remaining() {
        return rule.remaining;
      },
      cancel() {
        rule.remaining = 0;
        const i = rules.indexOf(rule);
        if (i >= 0) rules.splice(i, 1);
      },
    };
  }

  disconnectOnTopic(filter: string | undefined): void {
    if (filter === undefined) {
      this.faults.forbiddenTopics = [];
      return;
    }
    if (typeof filter !== 'string' || filter.length === 0) throw new RangeError('disconnectOnTopic: filter must be a non-empty topic filter');
    this.faults.forbiddenTopics.push(filter);
  }

  get packetFaults(): Readonly<PacketFaultCounts> {
    return { ...this.faults.counts };
  }

  get connections(): number {
    let n = 0;
    for (const c of this.open) if (c.clientOpen) n++;
    return n;
  }

  get attempts(): readonly number[] {
    return this.accepted;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.listenPort, LOOPBACK, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const address = this.server.address();
    if (typeof address === 'object' && address !== null) this.listenPort = address.port;
    // Like the brokers, a forgotten proxy must not keep the test process alive.
    this.server.unref();
    this.listening = true;
  }

  private accept(client: net.Socket): void {
    this.accepted.push(performance.now());
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort, allowHalfOpen: true });
    const conn = new ProxiedConnection(client, upstream, this.faults, () => this.open.delete(conn));
    this.open.add(conn);
  }

  reset(): void {
    for (const conn of this.open) conn.reset();
  }

  async refuse(on: boolean): Promise<void> {
    if (this.closed) throw new Error('link proxy is closed');
    if (on) {
      this.reset();
      await this.stopListening();
    } else if (!this.listening) {
      await this.listen();
    }
  }

  stall(on: boolean): void {
    this.faults.stalled = on;
    if (!on) for (const conn of this.open) conn.flush();
  }

  setLatency(oneWayMs: number): void {
    if (!(oneWayMs >= 0) || !Number.isFinite(oneWayMs)) throw new RangeError(`setLatency: bad latency ${oneWayMs}`);
    this.faults.latencyMs = oneWayMs;
    // Chunks already queued keep their delivery time; only new chunks get the new latency.
  }

  async outage(ms: number): Promise<void> {
    await this.refuse(true);
    await delay(ms);
    if (!this.closed) await this.refuse(false);
  }

  async stallFor(ms: number): Promise<void> {
    this.stall(true);
    await delay(ms);
    this.stall(false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reset();
    await this.stopListening();
  }

  private async stopListening(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    // The callback waits for open connections, which reset() has just destroyed.
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function startLinkProxy(opts: LinkProxyOptions): Promise<LinkProxy> {
  const proxy = new FaultyLink(opts.targetHost ?? LOOPBACK, opts.targetPort, opts.listenPort ?? 0);
  await proxy.listen();
  return proxy;
}
