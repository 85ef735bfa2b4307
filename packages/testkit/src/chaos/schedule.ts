/**
 * The fault schedule of one seed. Four tracks run side by side, each one event at a time: the network
 * (link and broker), acknowledgements (per-packet faults in the proxy), the devices (power cuts,
 * worker crashes, a full disk, clock jumps) and poison readings (topics the broker refuses or
 * disconnects on). The whole schedule is always drawn, then the kinds not selected are left out, so
 * `--faults` narrows a failing seed down without moving the faults that remain. `--focus` instead draws
 * from fewer kinds: a different, denser schedule, for hunting in one area.
 */
import { Draw } from './random.js';

export const FAULT_KINDS = [
  'reset', 'stall', 'latency', 'refuse', 'broker-pause', 'broker-restart',
  'drop-ack', 'dup-ack', 'delay-ack',
  'kill', 'worker-crash', 'disk-full', 'clock-jump',
  'refuse-topic', 'disconnect-topic',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** An acknowledgement of the QoS 2 exchange, and which way it travels. */
export type AckPacket = { direction: 'to-client'; type: 'pubrec' | 'pubcomp' } | { direction: 'to-broker'; type: 'pubrel' };

export type ChaosEvent = { atMs: number } & (
  | { kind: 'reset' | 'broker-restart' }
  /** For `durationMs`: hold the link's bytes, refuse connections, or SIGSTOP the broker. */
  | { kind: 'stall' | 'refuse' | 'broker-pause'; durationMs: number }
  | { kind: 'latency'; durationMs: number; oneWayMs: number }
  | { kind: 'drop-ack' | 'dup-ack'; ack: AckPacket }
  | { kind: 'delay-ack'; ack: AckPacket; delayMs: number }
  /** The device is off for `offMs`, then starts again on the same cache. */
  | { kind: 'kill'; device: number; offMs: number }
  | { kind: 'worker-crash'; device: number; how: 'throw' | 'exit' | 'oom' }
  /** The device's disk fills up, stays full for `durationMs`, then frees. */
  | { kind: 'disk-full'; device: number; durationMs: number }
  /** The device's wall clock moves to `offsetSec` from the real time (and stays there). */
  | { kind: 'clock-jump'; device: number; offsetSec: number }
  | { kind: 'refuse-topic' | 'disconnect-topic'; device: number }
);

export interface SeedPlan {
  seed: number;
  /** Faults start and end inside [0, durationMs]; then they stop and the devices must catch up. */
  durationMs: number;
  events: ChaosEvent[];
}

export interface PlanOptions {
  durationMs: number;
  /** Devices the device track chooses from. */
  devices: number;
  timeoutMs: number;
  kinds: ReadonlySet<FaultKind>;
  /** Draw only these kinds (a denser, different schedule from the same seed); undefined: draw all. */
  focus?: ReadonlySet<FaultKind> | undefined;
}

type Track = { kinds: readonly FaultKind[]; gapMs: [number, number] };

const TRACKS: readonly Track[] = [
  { kinds: ['reset', 'stall', 'latency', 'refuse', 'broker-pause', 'broker-restart'], gapMs: [1000, 4000] },
  { kinds: ['drop-ack', 'dup-ack', 'delay-ack'], gapMs: [1500, 5000] },
  { kinds: ['kill', 'worker-crash', 'disk-full', 'clock-jump'], gapMs: [1500, 5000] },
  { kinds: ['refuse-topic', 'disconnect-topic'], gapMs: [2000, 6000] },
];

// The first fault waits until the devices have run a little; the last one starts before 90 % of the window.
const FIRST_MS = 1000;
const LAST = 0.9;
const CLOCK_OFFSETS_SEC = [-3 * 365 * 86_400, -365 * 86_400, -3600, 3600, 86_400, 365 * 86_400, 0];

const ACKS: readonly AckPacket[] = [
  { direction: 'to-client', type: 'pubrec' },
  { direction: 'to-client', type: 'pubcomp' },
  { direction: 'to-broker', type: 'pubrel' },
];

export function planSeed(seed: number, opts: PlanOptions): SeedPlan {
  const events: ChaosEvent[] = [];
  TRACKS.forEach((track, i) => {
    const kinds = opts.focus === undefined ? track.kinds : track.kinds.filter((k) => opts.focus!.has(k));
    if (kinds.length === 0) return;
    // One independent stream per track: selecting kinds on one track never moves another's events.
    const draw = new Draw(seed * 31 + i);
    let at = FIRST_MS + draw.int(0, track.gapMs[1]);
    while (at < opts.durationMs * LAST) {
      const event = drawEvent(draw, draw.pick(kinds), at, opts);
      events.push(event);
      at += spanMs(event) + draw.int(track.gapMs[0], track.gapMs[1]);
    }
  });
  return {
    seed,
    durationMs: opts.durationMs,
    events: events.filter((e) => opts.kinds.has(e.kind)).sort((a, b) => a.atMs - b.atMs),
  };
}

/** Every parameter is drawn whatever the kind, so the draws after it do not depend on it. */
function drawEvent(draw: Draw, kind: FaultKind, atMs: number, opts: PlanOptions): ChaosEvent {
  const device = draw.int(0, opts.devices - 1);
  const durationMs = draw.int(300, 4000);
  const ack = draw.pick(ACKS);
  // Some delays end before the client's timeout, some after it.
  const delayMs = draw.int(100, 3 * opts.timeoutMs);
  const offMs = draw.int(100, 1500);
  const oneWayMs = draw.int(20, 400);
  const how = draw.pick(['throw', 'exit', 'oom'] as const);
  const offsetSec = draw.pick(CLOCK_OFFSETS_SEC);
  switch (kind) {
    case 'reset':
    case 'broker-restart':
      return { atMs, kind };
    case 'stall':
    case 'refuse':
    case 'broker-pause':
      return { atMs, kind, durationMs };
    case 'latency':
      return { atMs, kind, durationMs, oneWayMs };
    case 'drop-ack':
    case 'dup-ack':
      return { atMs, kind, ack };
    case 'delay-ack':
      return { atMs, kind, ack, delayMs };
    case 'kill':
      return { atMs, kind, device, offMs };
    case 'worker-crash':
      return { atMs, kind, device, how };
    case 'disk-full':
      return { atMs, kind, device, durationMs };
    case 'clock-jump':
      return { atMs, kind, device, offsetSec };
    case 'refuse-topic':
    case 'disconnect-topic':
      return { atMs, kind, device };
  }
}

/** How long the event occupies its track (planned; the runner may take longer). */
function spanMs(event: ChaosEvent): number {
  if ('durationMs' in event && event.kind !== 'disk-full') return event.durationMs;
  if (event.kind === 'kill') return event.offMs;
  return 0;
}

/** One line per event, for the log and the failure report. */
export function describeEvent(e: ChaosEvent, deviceNames: readonly string[]): string {
  const at = `${(e.atMs / 1000).toFixed(1)}s`;
  const who = 'device' in e ? ` ${deviceNames[e.device] ?? `device ${e.device}`}` : '';
  switch (e.kind) {
    case 'stall':
    case 'refuse':
    case 'broker-pause':
    case 'disk-full':
      return `${at} ${e.kind}${who} ${e.durationMs} ms`;
    case 'latency':
      return `${at} latency ${e.oneWayMs} ms one way for ${e.durationMs} ms`;
    case 'drop-ack':
    case 'dup-ack':
      return `${at} ${e.kind} ${e.ack.type} ${e.ack.direction}`;
    case 'delay-ack':
      return `${at} delay-ack ${e.ack.type} ${e.ack.direction} by ${e.delayMs} ms`;
    case 'kill':
      return `${at} kill${who}, off ${e.offMs} ms`;
    case 'worker-crash':
      return `${at} worker-crash${who} (${e.how})`;
    case 'clock-jump':
      return `${at} clock-jump${who} to ${e.offsetSec >= 0 ? '+' : ''}${Math.abs(e.offsetSec) >= 86_400 ? `${Math.round(e.offsetSec / 86_400)} d` : `${Math.round(e.offsetSec / 3600)} h`}`;
    default:
      return `${at} ${e.kind}${who}`;
  }
}
