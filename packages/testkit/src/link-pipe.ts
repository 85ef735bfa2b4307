import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameScanner } from './mqtt-frames.js';

/*
 * One proxied TCP connection: two byte pipes (client→upstream, upstream→client) with
 * explicit 'data' handlers, so a stall or a latency applies to every chunk exactly.
 */

/** Shared, live fault settings of the proxy, read on every chunk. */
export interface LinkFaults {
  stalled: boolean;
  latencyMs: number;
  /** Broker→client only: hold the stream from the next packet of this MQTT type on. */
  holdDownstreamAt: number | undefined;
  /** Set once that packet was seen; cleared by the proxy to release. */
  downstreamHeld: boolean;
}

// Held bytes above this pause the sender, as a full TCP window would; resume below LOW.
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;

/** RST-like close: the peer sees ECONNRESET rather than an orderly FIN. */
export function resetSocket(socket: Socket): void {
  try {
    if (!socket.destroyed && !socket.connecting && typeof socket.resetAndDestroy === 'function') {
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
  private readonly scanner = new FrameScanner();
  private held: Buffer[] = [];

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly faults: LinkFaults,
    private readonly downstream: boolean,
  ) {
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
    if (this.downstream) chunk = this.holdAtPacket(chunk);
    if (chunk.length > 0) this.enqueue(chunk);
  }

  /** Splits off (and holds) everything from the watched packet type on; returns the rest. */
  private holdAtPacket(chunk: Buffer): Buffer {
    const f = this.faults;
    if (f.downstreamHeld) {
      this.held.push(chunk);
      return Buffer.alloc(0);
    }
    if (f.holdDownstreamAt === undefined) {
      this.scanner.skip(chunk);
      return chunk;
    }
    const at = this.scanner.findFrame(chunk, f.holdDownstreamAt);
    if (at < 0) return chunk;
    f.downstreamHeld = true;
    this.held.push(chunk.subarray(at));
    return chunk.subarray(0, at);
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
    this.up = new Pipe(client, upstream, faults, false);
    this.down = new Pipe(upstream, client, faults, true);
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
