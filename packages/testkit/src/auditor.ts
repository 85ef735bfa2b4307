import { randomBytes } from 'node:crypto';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { AuditLedger, toExpected, type AuditReport, type Expected } from './audit-ledger.js';
import { defaultExtract, type Extract, type Reading } from './extract.js';

/*
 * A subscriber that counts what actually reached the broker: every reading, duplicates,
 * order, and what is missing. It uses a persistent QoS 2 session so its own reconnects
 * (e.g. across a broker restart) miss nothing the broker kept.
 */

export interface AuditorOptions {
  url: string;
  topics: string | string[];
  /** Default: a random 'auditor-xxxxxxxx'. */
  clientId?: string;
  /** Default 5. The Aedes fallback only speaks 4 (MQTT 3.1.1). */
  protocolVersion?: 4 | 5;
  /** Readings carried by one message. Default: defaultExtract. */
  extract?: Extract;
}

export interface WaitForOptions {
  /**
   * How long to keep listening after the last expected reading arrived, before reporting: a late
   * duplicate (a resend after a reconnect) or a late out-of-order reading is counted only if it
   * lands before the report. The window is fixed; it does not restart on later arrivals.
   * @default 500
   */
  settleMs?: number;
}

/** {@link WaitForOptions.settleMs}'s default, for waitFor() and waitForCount(). */
export const DEFAULT_SETTLE_MS = 500;

export interface Auditor {
  /** Readings counted (after extract), duplicates included. */
  readonly received: number;
  /** With `expected`: lost = expected − received per device. Without: gaps within epochs. */
  report(expected?: Record<string, Iterable<number>>): AuditReport;
  /** Seqs of `device` in arrival order. */
  arrivals(device: string): number[];
  /** Resolve when unique readings >= n and the settle window has passed; reject on timeout with the current counts. */
  waitForCount(n: number, timeoutMs: number, options?: WaitForOptions): Promise<void>;
  /**
   * Resolve with the report once every expected seq has arrived and a settle window has passed (late
   * duplicates and reorderings land in it), or on timeout (never rejects).
   */
  waitFor(expected: Record<string, Iterable<number>>, timeoutMs: number, options?: WaitForOptions): Promise<AuditReport>;
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 2_000;
// Long enough to outlive any test; the session is dropped explicitly on close().
const SESSION_EXPIRY_S = 0xffffffff;

/** Something waiting for readings; `check` runs after each new unique reading. */
interface Waiter {
  check(reading: Reading | undefined): void;
  abort(): void;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class MqttAuditor implements Auditor {
  private readonly ledger = new AuditLedger();
  private readonly waiters = new Set<Waiter>();
  private readonly topics: string[];
  private closed = false;
  private extractFailed = false;
  readonly client: MqttClient;

  constructor(private readonly opts: AuditorOptions & { clientId: string; protocolVersion: 4 | 5 }) {
    this.topics = typeof opts.topics === 'string' ? [opts.topics] : [...opts.topics];
    const options: IClientOptions = {
      clientId: opts.clientId,
      protocolVersion: opts.protocolVersion,
      clean: false,
      reconnectPeriod: 250,
      connectTimeout: 5_000,
      // MQTT.js does not resubscribe a 3.1.1 clean:false client whose session was lost;
      // we do it ourselves on every CONNACK without a session.
      resubscribe: false,
    };
    if (opts.protocolVersion === 5) options.properties = { sessionExpiryInterval: SESSION_EXPIRY_S };
    this.client = connect(opts.url, options);
    this.client.on('message', (topic, payload, packet) => {
      const properties = packet.properties as Record<string, unknown> | undefined;
      this.onMessage(properties === undefined ? { topic, payload } : { topic, payload, properties });
    });
  }

  /** Resolves after the first SUBACK; rejects on a refused connection or subscription. */
  ready(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let first = true;
      const fail = (err: Error): void => {
        clearTimeout(timer);
        this.client.off('error', onError);
        this.client.end(true);
        reject(err);
      };
      const onError = (err: Error & { code?: unknown }): void => {
        const hint =
          err.code === 1 && this.opts.protocolVersion === 5 ? ' (the broker refused MQTT 5; Aedes speaks 3.1.1 only: pass protocolVersion: 4)' : '';
        fail(new Error(`auditor ${this.opts.clientId}: cannot connect to ${this.opts.url}: ${err.message}${hint}`));
      };
      const timer = setTimeout(
        () => fail(new Error(`auditor ${this.opts.clientId}: no subscription on ${this.opts.url} within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      this.client.on('error', onError);
      this.client.on('connect', (connack) => {
        if (!first && connack.sessionPresent) return;
        const isFirst = first;
        first = false;
        this.client.subscribe(this.topics, { qos: 2 }, (err, granted) => {
          if (!isFirst) return;
          const refused = granted?.find((g) => g.qos > 2);
          if (err !== null && err !== undefined) fail(err);
          else if (refused !== undefined) fail(new Error(`auditor: subscription to ${refused.topic} refused (code ${refused.qos})`));
          else {
            clearTimeout(timer);
            this.client.off('error', onError);
            // Later errors (broker restarts) are retried by MQTT.js; keep them from crashing.
            this.client.on('error', () => {});
            resolve();
          }
        });
      });
    });
  }

  get received(): number {
    return this.ledger.received;
  }

  private onMessage(msg: Parameters<Extract>[0]): void {
    let readings: Reading[];
    try {
      readings = (this.opts.extract ?? defaultExtract)(msg);
    } catch (err) {
      if (!this.extractFailed) console.warn(`auditor ${this.opts.clientId}: extract threw on ${msg.topic}; message ignored:`, err);
      this.extractFailed = true;
      return;
    }
    for (const reading of readings) {
      if (this.ledger.record(reading)) for (const w of [...this.waiters]) w.check(reading);
    }
  }

  report(expected?: Record<string, Iterable<number>>): AuditReport {
    return this.ledger.report(expected === undefined ? undefined : toExpected(expected));
  }

  arrivals(device: string): number[] {
    return this.ledger.arrivals(device);
  }

  private counts(): string {
    const r = this.ledger;
    return `unique ${r.unique}, received ${r.received}, duplicates ${r.duplicates}, out of order ${r.outOfOrder}`;
  }

  waitForCount(n: number, timeoutMs: number, options: WaitForOptions = {}): Promise<void> {
    const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    return new Promise<void>((resolve, reject) => {
      let settling: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        check: () => {
          if (this.ledger.unique < n || settling !== undefined) return;
          clearTimeout(timer);
          settling = setTimeout(() => {
            finish();
            resolve();
          }, settleMs);
        },
        abort: () => {
          finish();
          reject(new Error(`auditor closed while waiting for ${n} unique readings (${this.counts()})`));
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`auditor: timed out after ${timeoutMs} ms waiting for ${n} unique readings (${this.counts()})`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        clearTimeout(settling);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter.check(undefined);
    });
  }

  waitFor(expected: Record<string, Iterable<number>>, timeoutMs: number, options: WaitForOptions = {}): Promise<AuditReport> {
    const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    // Materialize once: the caller's iterables may be one-shot generators.
    const want: Expected = toExpected(expected);
    let remaining = 0;
    for (const [device, seqs] of want) for (const seq of seqs) if (!this.ledger.has(device, seq)) remaining++;
    return new Promise<AuditReport>((resolve) => {
      let settling: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        clearTimeout(settling);
        this.waiters.delete(waiter);
        resolve(this.ledger.report(want));
      };
      const waiter: Waiter = {
        check: (reading) => {
          if (reading !== undefined && want.get(reading.device)?.has(reading.seq) === true) remaining--;
          if (remaining > 0 || settling !== undefined) return;
          // Everything arrived: the deadline no longer applies, only the settle window.
          clearTimeout(timer);
          settling = setTimeout(done, settleMs);
        },
        abort: done,
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(waiter);
      waiter.check(undefined);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.waiters]) w.abort();
    if (this.client.connected) {
      // Drop the persistent session, or the broker would queue messages for it forever.
      const graceful =
        this.opts.protocolVersion === 5
          ? this.client.endAsync(false, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
          : this.client.unsubscribeAsync(this.topics).then(() => this.client.endAsync(false));
      const done = await withTimeout(graceful.then(() => true, () => true), CLOSE_TIMEOUT_MS);
      // A hung (paused) broker never answers: drop the socket rather than hang close().
      if (done === undefined) this.client.stream.destroy();
    }
    if (!this.client.disconnecting) await this.client.endAsync(true);
  }
}

export async function startAuditor(opts: AuditorOptions): Promise<Auditor> {
  const auditor = new MqttAuditor({
    ...opts,
    clientId: opts.clientId ?? `auditor-${randomBytes(4).toString('hex')}`,
    protocolVersion: opts.protocolVersion ?? 5,
  });
  await auditor.ready();
  return auditor;
}
