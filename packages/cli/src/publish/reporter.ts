import type { HoldfastClient } from 'holdfast';
import { logJson } from '../output/log.js';
import { StatusLine } from '../output/status-line.js';

export interface Publisher {
  device: string;
  client: HoldfastClient;
}

const CLIENT_EVENTS = [
  'connect', 'disconnect', 'offline', 'online', 'spill', 'drain-start', 'drain-end', 'dead-letter', 'quarantine', 'connection-error',
  'evict', 'cache-recovered', 'watchdog', 'worker-restart', 'worker-failed',
] as const;
/** Client events logged above info: an outage and its cause, readings given up, a worker that died. */
const WARNINGS = new Set<string>(['disconnect', 'offline', 'connection-error', 'evict', 'watchdog', 'worker-restart']);
/** Events that mean the device can no longer publish. */
const ERRORS = new Set<string>(['worker-failed']);

/** Keeps only counters and reasons from an event's data: never payloads or credentials. */
function safeFields(data: unknown): Record<string, unknown> {
  if (typeof data !== 'object' || data === null) return {};
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (key === 'payload' || key === 'password') continue;
    if (typeof value === 'number' || typeof value === 'boolean' || (typeof value === 'string' && value.length <= 200)) out[key] = value;
    // A worker crash's loss ({ count, ranges }): the count and the seq range it spans, never the readings.
    else if (key === 'lost' && typeof value === 'object' && value !== null && typeof (value as { count?: unknown }).count === 'number') {
      const { count, ranges } = value as { count: number; ranges?: Array<[number, number]> };
      out.lost = count;
      if (ranges && ranges.length > 0) out.lostSeqs = `${ranges[0]![0]}..${ranges[ranges.length - 1]![1]}`;
    }
  }
  return out;
}

/** What the status line and the stats log line show, summed over the publishers. */
export interface Totals {
  states: string;
  connected: number;
  /** Publishers offline now, and the cause and duration of the longest of their outages. */
  offline: number;
  offlineCause: string;
  offlineForMs: number;
  accepted: number;
  memory: number;
  cached: number;
  delivered: number;
  spilled: number;
  reconnects: number;
}

/** The terminal's status line: OFFLINE up front while any publisher cannot reach the broker. */
export function statusText(t: Totals, publishers: number): string {
  const link = t.offline === 0 ? `online ${publishers}/${publishers}` : `OFFLINE ${t.offline}/${publishers} (${t.offlineCause.replace('-', ' ')}, ${Math.round(t.offlineForMs / 1000)} s)`;
  return `${t.states} | ${link} | accepted ${t.accepted} | memory ${t.memory} | cached ${t.cached} | delivered ${t.delivered} | reconnects ${t.reconnects}`;
}

/**
 * Shows what the publishers are doing: a live status line on a terminal, JSON logs otherwise
 * (client events as they happen, including every outage as 'offline' and its end as 'online' with
 * its duration, and a stats line every `statsEveryMs`), so journald holds every outage.
 */
export class Reporter {
  readonly #publishers: Publisher[];
  readonly #line: StatusLine | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #connected = new Set<string>();
  readonly #draining = new Set<string>();

  constructor(publishers: Publisher[], statsEveryMs: number, tty: boolean) {
    this.#publishers = publishers;
    this.#line = tty ? new StatusLine(process.stdout) : undefined;
    for (const { device, client } of publishers) {
      // 'state' also fires when only the offline flag changes; that is logged as 'offline' / 'online'.
      let state = client.state;
      client.on('state', (next: string) => {
        if (next === state) return;
        state = next as typeof state;
        this.#event(device, 'state', { state });
      });
      for (const name of CLIENT_EVENTS) {
        client.on(name, (data: unknown) => {
          // The catch-up below may already have reported this connection or drain.
          if (!this.#track(device, name)) return;
          this.#event(device, name, safeFields(data), ERRORS.has(name) ? 'error' : WARNINGS.has(name) ? 'warn' : 'info');
        });
      }
      client.on('error', (err: Error & { code?: string }) => this.#event(device, 'error', { code: err.code, error: err.message }, 'error'));
      // A fast broker may have answered before these listeners existed.
      if (client.stats().connected) {
        this.#connected.add(device);
        this.#event(device, 'connect', {});
      }
      // The first device's start-up drain may have begun while the next ones opened.
      if (client.state === 'draining') {
        this.#draining.add(device);
        this.#event(device, 'drain-start', { cached: client.stats().cached.messages });
      }
    }
    this.#timer = setInterval(() => this.#tick(), this.#line ? 500 : statsEveryMs);
    this.#timer.unref();
  }

  /** Connections and drains already reported, so the catch-up at start never reports one twice. */
  #track(device: string, name: string): boolean {
    if (name === 'disconnect') this.#connected.delete(device);
    if (name === 'drain-end') this.#draining.delete(device);
    const reported = name === 'connect' ? this.#connected : name === 'drain-start' ? this.#draining : undefined;
    if (reported === undefined) return true;
    if (reported.has(device)) return false;
    reported.add(device);
    return true;
  }

  /** Notes from the publisher itself (start, stop, anomalies). */
  info(msg: string, fields: Record<string, unknown> = {}): void {
    if (this.#line) this.#line.note(`${msg}${Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ''}`);
    else logJson('info', msg, fields);
  }

  #event(device: string, name: string, fields: Record<string, unknown>, level: 'info' | 'warn' | 'error' = 'info'): void {
    if (this.#line) this.#line.note(`${device}: ${name}${Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ''}`);
    else logJson(level, name, { device, ...fields });
  }

  #tick(): void {
    const t = this.totals();
    if (this.#line) {
      this.#line.update(statusText(t, this.#publishers.length));
    } else {
      logJson('info', 'stats', { ...t });
    }
  }

  totals(): Totals {
    const states = new Set<string>();
    const t: Totals = { states: '', connected: 0, offline: 0, offlineCause: '', offlineForMs: 0, accepted: 0, memory: 0, cached: 0, delivered: 0, spilled: 0, reconnects: 0 };
    for (const { client } of this.#publishers) {
      const s = client.stats();
      states.add(s.state);
      t.connected += s.connected ? 1 : 0;
      if (s.offline) {
        t.offline++;
        // The longest outage stands for them all.
        if (s.offlineForMs >= t.offlineForMs) {
          t.offlineForMs = s.offlineForMs;
          t.offlineCause = s.offlineCause ?? '';
        }
      }
      t.accepted += s.accepted;
      t.memory += s.memoryQueued;
      t.cached += s.cached.messages;
      t.delivered += s.delivered;
      t.spilled += s.spilled;
      t.reconnects += s.reconnects;
    }
    t.states = [...states].join('+');
    return t;
  }

  stop(): void {
    clearInterval(this.#timer);
    if (this.#line) {
      this.#tick();
      this.#line.end();
    }
  }
}
