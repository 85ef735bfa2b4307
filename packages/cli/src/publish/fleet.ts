import { ErrorCodes, type HoldfastClient } from 'holdfast';
import { SimulatedDevice } from '../simulator/device.js';
import type { ProfileName } from '../simulator/profiles.js';
import type { Reporter } from './reporter.js';

export interface FleetMember {
  device: string;
  profile: ProfileName;
  client: HoldfastClient;
}

export interface FleetSettings {
  /** Topic template with {device} and {kind}. */
  topic: string;
  /** Telemetry interval; undefined uses each profile's own. */
  intervalMs: number | undefined;
  /** Messages per device (every kind); undefined runs until stopped. */
  count: number | undefined;
  /** Telemetry priority; status goes below it (superseded by the next one) and events above it. */
  priority: number;
}

export function topicFor(template: string, device: string, kind: string): string {
  return template.replaceAll('{device}', device).replaceAll('{kind}', kind);
}

/**
 * One device of the fleet: telemetry every interval, a status message (with its own queue stats)
 * every few readings, and an event for each anomaly and each reconnect. Every payload carries the
 * device id and a per-run message number `n`, so a receiver can count even without MQTT 5.
 */
class DeviceLoop {
  readonly #m: FleetMember;
  readonly #s: FleetSettings;
  readonly #sim: SimulatedDevice;
  readonly #reporter: Reporter;
  readonly #started = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #n = 0;
  #readings = 0;
  #wasOnline = false;
  readonly done: Promise<void>;
  #finish!: () => void;

  constructor(member: FleetMember, settings: FleetSettings, reporter: Reporter) {
    this.#m = member;
    this.#s = settings;
    this.#reporter = reporter;
    this.#sim = new SimulatedDevice(member.device, member.profile);
    this.done = new Promise<void>((resolve) => (this.#finish = resolve));
    member.client.on('online', ({ cause, offlineMs }: { cause: string; offlineMs: number }) => {
      // The first 'online' is the start-up connection, not the end of an outage.
      if (this.#wasOnline) this.#publish('event', { type: 'reconnected', cause, offlineMs }, Math.min(10, settings.priority + 3));
      this.#wasOnline = true;
    });
  }

  start(): void {
    const interval = this.#s.intervalMs ?? this.#sim.profile.intervalMs;
    this.#tick();
    if (!this.#stopped()) this.#timer = setInterval(() => this.#tick(), interval);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#finish();
  }

  /** --count counts every message (telemetry, status and events), so an audit sees exactly that many. */
  #stopped(): boolean {
    if (this.#s.count === undefined || this.#n < this.#s.count) return false;
    this.stop();
    return true;
  }

  #tick(): void {
    if (this.#stopped()) return;
    const now = Date.now();
    const reading = this.#sim.read(now);
    this.#readings++;
    this.#publish('telemetry', { values: reading.values }, this.#s.priority);
    if (reading.anomaly !== undefined && this.#publish('event', { type: 'anomaly', metric: reading.anomaly, value: reading.values[reading.anomaly] }, Math.min(10, this.#s.priority + 3))) {
      this.#reporter.info('anomaly', { device: this.#m.device, metric: reading.anomaly });
    }
    if (this.#readings % this.#sim.profile.statusEvery === 0) this.#publish('status', this.#status(), Math.max(1, this.#s.priority - 2));
    this.#stopped();
  }

  #status(): Record<string, unknown> {
    const s = this.#m.client.stats();
    return {
      uptimeS: Math.round((performance.now() - this.#started) / 1000),
      queue: { state: s.state, connected: s.connected, offline: s.offline, memory: s.memoryQueued, cached: s.cached.messages, cachedBytes: s.cached.bytes, delivered: s.delivered, spilled: s.spilled, evicted: s.evicted, reconnects: s.reconnects },
    };
  }

  /**
   * False once --count messages went out (nothing beyond the count, whatever its kind), or when the
   * client refused the message. A refused message keeps its `n` for the next one, so an audit sees no
   * gap that was never accepted: journal mode refuses what a full disk cannot log (the client's
   * 'error' event says so, once per episode). A client that can publish no more stops this device.
   */
  #publish(kind: string, body: Record<string, unknown>, priority: number): boolean {
    if (this.#s.count !== undefined && this.#n >= this.#s.count) return false;
    const payload = JSON.stringify({ device: this.#m.device, profile: this.#m.profile, kind, n: this.#n + 1, ts: Date.now(), ...body });
    try {
      this.#m.client.publish(topicFor(this.#s.topic, this.#m.device, kind), payload, { priority });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === ErrorCodes.CACHE_WRITE_FAILED) return false;
      if (code === ErrorCodes.WORKER_FAILED || code === ErrorCodes.CLOSED) {
        this.#reporter.info('publisher stopped', { device: this.#m.device, code });
        this.stop();
        return false;
      }
      throw err;
    }
    this.#n++;
    return true;
  }
}

/** Runs the fleet until every device has published `count` readings, or until stop(). */
export class Fleet {
  readonly #loops: DeviceLoop[];

  constructor(members: FleetMember[], settings: FleetSettings, reporter: Reporter) {
    this.#loops = members.map((m) => new DeviceLoop(m, settings, reporter));
  }

  start(): Promise<void> {
    for (const loop of this.#loops) loop.start();
    return Promise.all(this.#loops.map((l) => l.done)).then(() => undefined);
  }

  stop(): void {
    for (const loop of this.#loops) loop.stop();
  }
}
