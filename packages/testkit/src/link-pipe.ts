import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameSplitter, PacketType, publishTopic, topicMatches } from './mqtt-frames.js';

/*
 * One proxied TCP connection: two byte pipes (client→upstream, upstream→client) with
 * explicit 'data' handlers, so a stall or a latency applies to every chunk exactly, and a
 * frame splitter, so a fault can act on one MQTT packet.
 */

/** 'to-broker': packets the client sends; 'to-client': packets the broker sends. */
export type Direction = 'to-broker' | 'to-client';

/** One armed per-packet fault: act on the next `remaining` packets of `type` going `direction`. */
export interface PacketRule {
  readonly direction: Direction;
  readonly type: number;
  readonly action: 'drop' | 'duplicate' | 'delay';
  readonly delayMs: number;
  remaining: number;
  applied: number;
}

export interface PacketFaultCounts {
  /** Packets dropped out of the stream. */
  dropped: number;
  /** Packets sent twice. */
  duplicated: number;
  /** Packets held back and sent later. */
  delayed: number;
  /** Connections reset because the client published to a forbidden topic. */
  topicResets: number;
}

/** Shared, live fault settings of the proxy, read on every chunk. */
export interface LinkFaults {
  stalled: boolean;
  latencyMs: number;
  /** Broker→client only: hold the stream from the next packet of this MQTT type on. */
  holdDownstreamAt: number | undefined;
  /** Set once that packet was seen; cleared by the proxy to release. */
  downstreamHeld: boolean;
  /** Per-packet faults in the order they were armed; the first live one for a packet wins. */
  packetRules: PacketRule[];
  /** A client PUBLISH to a topic matching one of these filters resets the connection. */
  forbiddenTopics: string[];
  readonly counts: PacketFaultCounts;
}

// Held bytes above this pause the sender, as a full TCP window would; resume below LOW.
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;

/**
 * RST-like close: the peer sees ECONNRESET rather than an orderly FIN. Not while a forwarded FIN is
 * still pending: libuv refuses to reset a socket that is shutting down (EINVAL), and Node then never
 * closes its handle, which hung a test process at exit. That socket is destroyed plainly instead.
 */
export function resetSocket(socket: Socket): void {
  const shuttingDown = socket.writableEnded && !socket.writableFinished;
  try {
    if (!socket.destroyed && !socket.connecting && !shuttingDown && typeof socket.resetAndDestroy === 'function') {
      socket.resetAndDestroy();
    } else {
      socket.destroy();
    }
  } catch {
    socket.destroy();
  }
}

/** Bytes from `src` to `dst`, delayed and held according to the faults. */
class Pipe {
  private queue: Array<{ chunk: Buffer; due: number }> = [];
  private queuedBytes = 0;
  private lastDue = 0;
  private timer: NodeJS.Timeout | undefined;
  private blocked = false;
  private srcEnded = false;
  private dead = false;
  private readonly splitter: FrameSplitter;
  private held: Buffer[] = [];
  /** Delayed frames now due, waiting for a frame boundary so they cannot cut into another frame. */
  private due: Buffer[] = [];
  private readonly delayTimers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly faults: LinkFaults,
    private readonly direction: Direction,
    /** Reset the whole connection (a forbidden topic). */
    private readonly resetConnection: () => void,
  ) {
    this.splitter = new FrameSplitter((type) => this.wantWhole(type));
    src.on('data', (chunk: Buffer) => this.push(chunk));
    src.on('end', () => {
      this.srcEnded = true;
      this.flush();
    });
    dst.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
  }

  private push(chunk: Buffer): void {
    if (this.dead) return;
    this.splitter.push(chunk, {
      pass: (bytes, endsFrame) => {
        this.forward(bytes);
        if (endsFrame) this.insertDue();
      },
      whole: (frame, type) => {
        this.onFrame(frame, type);
        this.insertDue();
      },
    });
  }

  /** Gather a frame whole only when a fault may act on it; everything else streams. */
  private wantWhole(type: number): boolean {
    const f = this.faults;
    if (this.direction === 'to-client' && !f.downstreamHeld && f.holdDownstreamAt === type) return true;
    if (this.direction === 'to-broker' && type === PacketType.publish && f.forbiddenTopics.length > 0) return true;
    return f.packetRules.some((r) => r.remaining > 0 && r.direction === this.direction && r.type === type);
  }

  private onFrame(frame: Buffer, type: number): void {
    // A forbidden topic reset the connection earlier in this chunk: the rest of it is gone.
    if (this.dead) return;
    const f = this.faults;
    if (this.direction === 'to-client' && !f.downstreamHeld && f.holdDownstreamAt === type) {
      f.downstreamHeld = true;
      this.held.push(frame);
      return;
    }
    if (this.direction === 'to-broker' && type === PacketType.publish && f.forbiddenTopics.length > 0) {
      const topic = publishTopic(frame);
      if (topic !== undefined && f.forbiddenTopics.some((filter) => topicMatches(filter, topic))) {
        f.counts.topicResets++;
        this.resetConnection();
        return;
      }
    }
    const rule = f.packetRules.find((r) => r.remaining > 0 && r.direction === this.direction && r.type === type);
    if (rule === undefined) {
      this.forward(frame);
      return;
    }
    rule.remaining--;
    rule.applied++;
    if (rule.remaining === 0) f.packetRules.splice(f.packetRules.indexOf(rule), 1);
    switch (rule.action) {
      case 'drop':
        f.counts.dropped++;
        return;
      case 'duplicate':
        f.counts.duplicated++;
        this.forward(frame);
        this.forward(frame);
        return;
      case 'delay': {
        f.counts.delayed++;
        const timer = setTimeout(() => {
          this.delayTimers.delete(timer);
          this.due.push(frame);
          if (this.splitter.atBoundary) this.insertDue();
        }, rule.delayMs);
        this.delayTimers.add(timer);
        return;
      }
    }
  }

  /** Sends delayed frames that came due, at a frame boundary: packets behind them overtook them. */
  private insertDue(): void {
    if (this.dead) return;
    const due = this.due;
    this.due = [];
    for (const frame of due) this.forward(frame);
  }

  /** Into the held bytes while the stream is held at a packet, else onto the (delayed, stallable) wire. */
  private forward(bytes: Buffer): void {
    if (this.dead) return;
    if (this.direction === 'to-client' && this.faults.downstreamHeld) this.held.push(bytes);
    else this.enqueue(bytes);
  }

  /** Delivers bytes held at a packet, in order. */
  releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (const chunk of held) this.enqueue(chunk);
  }

  private enqueue(chunk: Buffer): void {
    // Never earlier than the previous chunk: lowering the latency must not reorder bytes.
    const due = Math.max(performance.now() + this.faults.latencyMs, this.lastDue);
    this.lastDue = due;
    this.queue.push({ chunk, due });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > HIGH_WATER) this.src.pause();
    this.flush();
  }

  /** Deliver every chunk that is due, unless stalled or the destination is full. */
  flush(): void {
    if (this.dead || this.faults.stalled || this.blocked) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const now = performance.now();
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.due > now) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.flush();
        }, Math.ceil(head.due - now));
        break;
      }
      this.queue.shift();
      this.queuedBytes -= head.chunk.length;
      if (this.dst.destroyed) continue;
      if (!this.dst.write(head.chunk)) {
        this.blocked = true;
        break;
      }
    }
    if (this.queuedBytes < LOW_WATER && this.src.isPaused() && !this.src.destroyed) this.src.resume();
    // The FIN travels behind the data, so it is held and delayed like the data.
    if (this.queue.length === 0 && this.srcEnded && !this.dst.destroyed) this.dst.end();
  }

  /** The source closed without an orderly end (or we reset): treat it as ended. */
  markEnded(): void {
    this.srcEnded = true;
    this.flush();
  }

  drop(): void {
    this.dead = true;
    this.queue = [];
    this.queuedBytes = 0;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    // A delayed packet dies with its connection, as it would in a broker that is gone.
    for (const t of this.delayTimers) clearTimeout(t);
    this.delayTimers.clear();
    this.due = [];
  }
}

export class ProxiedConnection {
  private readonly up: Pipe;
  private readonly down: Pipe;
  private closedSides = 0;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
    faults: LinkFaults,
    onClosed: () => void,
  ) {
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.up = new Pipe(client, upstream, faults, 'to-broker', () => this.reset());
    this.down = new Pipe(upstream, client, faults, 'to-client', () => this.reset());
    this.wire(client, upstream, this.up, this.down, onClosed);
    this.wire(upstream, client, this.down, this.up, onClosed);
  }

  private wire(self: Socket, other: Socket, fromSelf: Pipe, toSelf: Pipe, onClosed: () => void): void {
    // ECONNRESET, EPIPE, ECONNREFUSED from upstream: never crash, pass the failure on.
    self.on('error', () => {});
    self.on('close', (hadError) => {
      toSelf.drop();
      if (hadError) {
        fromSelf.drop();
        resetSocket(other);
      } else {
        fromSelf.markEnded();
      }
      if (++this.closedSides === 2) onClosed();
    });
  }

  /** Stall or latency changed: let the pipes deliver what is now due. */
  flush(): void {
    this.up.flush();
    this.down.flush();
  }

  releaseHeld(): void {
    this.down.releaseHeld();
  }

  reset(): void {
    this.up.drop();
    this.down.drop();
    resetSocket(this.client);
    resetSocket(this.upstream);
  }

  get clientOpen(): boolean {
    return !this.client.destroyed;
  }
}
