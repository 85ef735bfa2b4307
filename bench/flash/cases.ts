/**
 * One measurement each: a device process under the slow-fsync shim, its marks turned into the figures.
 * Per-reading costs are differences of the device's own counters between two marks (the shim's sync
 * counts, /proc/self/io write_bytes) divided by the readings between them.
 */
import { fileURLToPath } from 'node:url';
import { spawnDevice, startLinkProxy, type DeviceEvent, type DeviceProcess, type SyncCounts } from '@holdfast/testkit';
import type { ProcIo } from '../power-cut/proc-io.js';
import { sleep, tempDir } from '../lib/common.js';

export type CaseName = 'journal' | 'spill' | 'drain' | 'drain-bulk';

export interface FlashResult {
  fsyncMs: number;
  case: CaseName;
  /** Every flush the shim delayed (fsync, fdatasync, msync, O_DSYNC writes, …) per reading. */
  fsyncsPerReading: number;
  /** The part of fsyncsPerReading that was writes to an O_DSYNC descriptor (LMDB's meta page). */
  dsyncWritesPerReading: number;
  /** /proc/<pid>/io write_bytes per reading. */
  bytesPerReading: number;
  /** The storage's own time per flush (the real call, without the injected latency), ms. */
  diskMsPerFsync: number;
  readingsPerSecond: number;
  /** From the link's return to an empty cache, after the outage; null when it did not catch up. */
  catchUpSeconds: number | null;
}

export interface FlashSettings {
  /** Readings per second offered while measuring costs and during outages. */
  rate: number;
  /** Readings offered at `rate` for the healthy cases' costs. */
  count: number;
  /** Closed-loop window for the sustained rate, seconds. */
  windowS: number;
  /** At most this many readings accepted but not delivered in the closed loop. */
  outstanding: number;
  /** The short outage whose backlog is drained with no new readings (drain rate and costs). */
  drainOutageS: number;
  /** The outage before the catch-up. */
  outageS: number;
  /** It did not catch up if the backlog has not shrunk this long after reconnecting. */
  giveUpS: number;
  /** ...or if the cache is not empty this long after the link came back. */
  capS: number;
  broker: string;
  brokerPort: number;
  log: (line: string) => void;
}

interface Mark {
  mark: string;
  t: number;
  accepted: number;
  delivered: number;
  io: ProcIo | undefined;
  syncs: SyncCounts;
}

/** A stats line of device.ts: [t, state, connected, memory, inflight, cached, delivered, accepted]. */
interface Sample {
  t: number;
  connected: boolean;
  cached: number;
  delivered: number;
  accepted: number;
}

const device = fileURLToPath(new URL('./device.ts', import.meta.url));
const baselineDevice = fileURLToPath(new URL('./baseline-device.ts', import.meta.url));
const RUN_TIMEOUT_MS = 600_000;
const now = (): number => performance.timeOrigin + performance.now();
let clients = 0;

function start(script: string, fsyncMs: number, cacheDir: string, env: Record<string, string>): DeviceProcess {
  return spawnDevice({
    script,
    execArgv: ['--import', 'tsx'],
    // tsx would otherwise write its compile cache from the device process and count as flash wear.
    env: { HF_CACHE_DIR: cacheDir, TSX_DISABLE_CACHE: '1', ...env },
    slowFsyncMs: fsyncMs,
  });
}

function marks(d: DeviceProcess): Map<string, Mark> {
  return new Map(d.events.filter((e) => typeof e.mark === 'string').map((e) => [e.mark as string, e as unknown as Mark]));
}

function costs(from: Mark, to: Mark, readings: number): Pick<FlashResult, 'fsyncsPerReading' | 'dsyncWritesPerReading' | 'bytesPerReading' | 'diskMsPerFsync'> {
  const per = (value: number, digits: number): number => (readings > 0 ? round(value / readings, digits) : Number.NaN);
  const flushes = to.syncs.total - from.syncs.total;
  return {
    fsyncsPerReading: per(flushes, 2),
    dsyncWritesPerReading: per(to.syncs.dsyncWrites - from.syncs.dsyncWrites, 2),
    bytesPerReading: per((to.io?.writeBytes ?? Number.NaN) - (from.io?.writeBytes ?? Number.NaN), 0),
    diskMsPerFsync: flushes > 0 ? round((to.syncs.syncMs - from.syncs.syncMs) / flushes, 2) : 0,
  };
}

function ratePerSecond(readings: number, fromMs: number, toMs: number): number {
  return round((readings * 1000) / (toMs - fromMs), 1);
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function finished(d: DeviceProcess, what: string): Promise<void> {
  try {
    await d.waitForEvent((e) => e.done === true, RUN_TIMEOUT_MS);
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
  await d.exited;
}

function need(m: Map<string, Mark>, label: string, what: string): Mark {
  const mark = m.get(label);
  if (mark === undefined) throw new Error(`${what}: the device printed no '${label}' mark`);
  return mark;
}

/** journal or spill on a healthy link: costs at `rate`, then the closed loop's delivered rate. */
export async function healthyCase(s: FlashSettings, durability: 'journal' | 'spill', fsyncMs: number): Promise<FlashResult> {
  const what = `${durability} at ${fsyncMs} ms`;
  const dir = tempDir(`flash-${durability}`);
  try {
    const d = start(device, fsyncMs, dir.path, {
      HF_SCRIPT: 'healthy',
      HF_BROKER: s.broker,
      HF_CLIENT_ID: `flash-${durability}-${fsyncMs}-${++clients}`,
      HF_DURABILITY: durability,
      HF_RATE: String(s.rate),
      HF_COUNT: String(s.count),
      HF_WINDOW_S: String(s.windowS),
      HF_OUTSTANDING: String(s.outstanding),
    });
    await finished(d, what);
    const m = marks(d);
    const [rateStart, rateEnd, satStart, satEnd] = ['rate-start', 'rate-end', 'sat-start', 'sat-end'].map((l) => need(m, l, what)) as [Mark, Mark, Mark, Mark];
    return {
      fsyncMs,
      case: durability,
      ...costs(rateStart, rateEnd, rateEnd.accepted - rateStart.accepted),
      readingsPerSecond: ratePerSecond(satEnd.delivered - satStart.delivered, satStart.t, satEnd.t),
      catchUpSeconds: null,
    };
  } finally {
    dir.remove();
  }
}

/** Reads device.ts's stats lines as they come. */
function watch(d: DeviceProcess): { samples: Sample[]; connects: number[] } {
  const samples: Sample[] = [];
  const connects: number[] = [];
  d.on('event', (e: DeviceEvent) => {
    if (Array.isArray(e.s)) {
      const [t, , connected, , , cached, delivered, accepted] = e.s as number[];
      samples.push({ t: t!, connected: connected === 1, cached: cached!, delivered: delivered!, accepted: accepted! });
    } else if (e.ev === 'connect') connects.push(e.t as number);
  });
  return { samples, connects };
}

async function until<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

async function markNow(d: DeviceProcess, signal: 'SIGUSR1' | 'SIGUSR2', label: string): Promise<Mark> {
  process.kill(d.pid, signal);
  return (await d.waitForEvent((e) => e.mark === label, 30_000)) as unknown as Mark;
}

/**
 * The drain after an outage, through the testkit's link proxy, in spill mode (the default).
 * First a short outage whose backlog drains with no new readings: the drain rate and its costs per
 * reading drained. Then the long outage at `rate` with readings still coming: the catch-up time.
 */
export async function drainCase(s: FlashSettings, bulk: boolean, fsyncMs: number): Promise<FlashResult> {
  const name: CaseName = bulk ? 'drain-bulk' : 'drain';
  const what = `${name} at ${fsyncMs} ms`;
  const dir = tempDir(`flash-${name}`);
  const link = await startLinkProxy({ targetPort: s.brokerPort });
  let d: DeviceProcess | undefined;
  try {
    d = start(device, fsyncMs, dir.path, {
      HF_SCRIPT: 'outage',
      HF_BROKER: link.url,
      HF_CLIENT_ID: `flash-${name}-${fsyncMs}-${++clients}`,
      HF_DURABILITY: 'spill',
      HF_BULK: bulk ? '1' : '0',
      HF_RATE: String(s.rate),
      // Short enough that even the short outage's backlog is in the cache when the link returns.
      HF_TIMEOUT_MS: '300',
    });
    const { samples, connects } = watch(d);
    await d.waitForEvent((e) => e.open === true, 60_000);
    await sleep(500);

    // The drain: backlog of the short outage, no new readings while it drains.
    await link.outage(s.drainOutageS * 1000);
    const drainStart = await markNow(d, 'SIGUSR2', '1');
    const drained = await until(
      () => samples.find((x) => x.t > drainStart.t && x.connected && x.cached === 0 && x.delivered >= drainStart.accepted),
      s.capS * 1000,
      `${what}: the short outage's backlog to drain`,
    );
    const drainEnd = await markNow(d, 'SIGUSR1', '2');
    const reconnected = connects.find((t) => t > drainStart.t - 1000) ?? drainStart.t;
    const backlog = drained.delivered - drainStart.delivered;
    const cached = samples.filter((x) => x.t <= drainStart.t).at(-1)?.cached ?? 0;
    if (cached === 0) s.log(`${what}: the short outage left nothing in the cache; the drain figures are from memory`);

    // The catch-up: readings keep coming through the outage and after it.
    await markNow(d, 'SIGUSR2', '3');
    await link.outage(s.outageS * 1000);
    const up = now();
    const caughtUp = await until(() => catchUp(samples, connects, up, s), (s.capS + 5) * 1000, `${what}: the catch-up to end`);
    return {
      fsyncMs,
      case: name,
      ...costs(drainStart, drainEnd, backlog),
      readingsPerSecond: ratePerSecond(backlog, Math.max(reconnected, drainStart.t), drained.t),
      catchUpSeconds: caughtUp.seconds,
    };
  } finally {
    if (d !== undefined) await d.kill('SIGTERM');
    await link.close();
    dir.remove();
  }
}

/**
 * The catch-up's end: every reading accepted before the link came back is delivered, and less than
 * half a second of readings is waiting (a bulk drain over a slow disk never finds the cache exactly
 * empty while readings keep coming). Or it is not catching up: the backlog has not shrunk `giveUpS`
 * after reconnecting, or `capS` have passed.
 */
function catchUp(samples: readonly Sample[], connects: readonly number[], up: number, s: FlashSettings): { seconds: number | null } | undefined {
  const after = samples.filter((x) => x.t > up);
  const last = after.at(-1);
  if (last === undefined) return undefined;
  const acceptedBeforeUp = samples.filter((x) => x.t <= up).at(-1)?.accepted ?? 0;
  const done = after.find((x) => x.delivered >= acceptedBeforeUp && x.accepted - x.delivered < s.rate / 2);
  if (done !== undefined) return { seconds: round((done.t - up) / 1000, 2) };
  if (last.t - up > s.capS * 1000) return { seconds: null };
  const reconnected = connects.find((t) => t > up);
  if (reconnected === undefined) return undefined;
  const atReconnect = after.find((x) => x.t >= reconnected);
  if (atReconnect !== undefined && last.t - reconnected > s.giveUpS * 1000 && last.accepted - last.delivered >= atReconnect.accepted - atReconnect.delivered) return { seconds: null };
  return undefined;
}

/** Plain LMDB, one synced commit per reading: put (journal), then remove (drain). */
export async function baselineCases(s: FlashSettings, fsyncMs: number): Promise<[FlashResult, FlashResult]> {
  const what = `baseline at ${fsyncMs} ms`;
  const dir = tempDir('flash-baseline');
  try {
    const d = start(baselineDevice, fsyncMs, dir.path, {
      HF_RATE: String(s.rate),
      HF_COUNT: String(s.count),
      HF_WINDOW_S: String(s.windowS),
      HF_BACKLOG: String(Math.round(s.rate * s.drainOutageS)),
      HF_CATCH_UP_BACKLOG: String(Math.round(s.rate * s.outageS)),
      HF_GIVE_UP_S: String(s.giveUpS),
      HF_CAP_S: String(s.capS),
    });
    await finished(d, what);
    const m = marks(d);
    const [rateStart, rateEnd, satStart, satEnd, drainStart, drainEnd] = ['rate-start', 'rate-end', 'sat-start', 'sat-end', 'drain-start', 'drain-end'].map((l) => need(m, l, what)) as [Mark, Mark, Mark, Mark, Mark, Mark];
    const drained = drainEnd.delivered - drainStart.delivered;
    const caughtUp = d.events.find((e) => 'caughtUp' in e)?.caughtUp as number | null | undefined;
    return [
      {
        fsyncMs,
        case: 'journal',
        ...costs(rateStart, rateEnd, rateEnd.accepted - rateStart.accepted),
        readingsPerSecond: ratePerSecond(satEnd.accepted - satStart.accepted, satStart.t, satEnd.t),
        catchUpSeconds: null,
      },
      {
        fsyncMs,
        case: 'drain',
        ...costs(drainStart, drainEnd, drained),
        readingsPerSecond: ratePerSecond(drained, drainStart.t, drainEnd.t),
        catchUpSeconds: typeof caughtUp === 'number' ? round(caughtUp, 2) : null,
      },
    ];
  } finally {
    dir.remove();
  }
}
