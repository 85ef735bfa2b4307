/**
 * The device's lives: one process at a time on the same cache, SIGKILLed (a power cut) and started
 * again, each life continuing the reading numbers after the last one the previous life accepted.
 * With a power-loss layer under the cache, each kill also drops every write not yet synced.
 * It keeps the ground truth (every accepted reading number, from the device's synchronous stdout),
 * the depth samples for the timeline, and each life's disk writes from /proc/<pid>/io.
 */
import { fileURLToPath } from 'node:url';
import { spawnDevice, type DeviceEvent, type DeviceProcess, type PowerLossStats } from '@holdfast/testkit';
import { readProcIo, type ProcIo } from './proc-io.js';
import type { Timeline } from './timeline.js';

const deviceScript = fileURLToPath(new URL('./device.ts', import.meta.url));
const OPEN_TIMEOUT_MS = 30_000;
const IO_SAMPLE_MS = 100;

export interface FleetOptions {
  broker: string;
  clientId: string;
  cacheDir: string;
  durability: 'spill' | 'journal';
  /** How often the device calls flush() and reports what it confirmed (ms; 0: back to back; undefined: never). */
  flushMs: number | undefined;
  rate: number;
  timeoutMs: number;
  /** Added to every life's environment (e.g. LD_PRELOAD of a slow-fsync shim). */
  deviceEnv: Record<string, string>;
  /** The layer under the cache that a kill also cuts (testkit's startPowerLossLayer()). */
  powerLoss?: PowerCut;
}

/** What the fleet needs of a power-loss layer. */
export interface PowerCut {
  /** Drops everything not synced; resolves with the layer's counters at the cut. */
  powerCut(): Promise<PowerLossStats>;
  /** Environment of a life started after a cut (a new boot). */
  readonly afterBootEnv: Readonly<Record<string, string>>;
}

/** One process lifetime of the device. */
export interface Life {
  index: number;
  pid: number;
  /** Reading numbers this life accepted, ascending. */
  accepted: number[];
  end: 'kill' | 'drain' | 'running';
  /** Disk writes: the sample taken just before the kill, or the device's own report at exit. */
  io: ProcIo | undefined;
  /** Readings in memory and in flight at the last stats sample before the kill. */
  volatileAtKill: number;
  /** The highest memory depth this life reported. */
  maxMemory: number;
  /** Client 'quarantine' and 'error' events: a cache moved aside loses what it held. */
  alarms: string[];
  /** From spawning the process to open() resolving: node, tsx, LMDB open, worker start. */
  startMs: number;
  /** Disk writes by the time open() resolved: start-up cost (LMDB open, epoch commit), not per reading. */
  ioAtOpen: ProcIo | undefined;
  /** Every reading up to this number was confirmed by flush() (0 = none). */
  confirmedN: number;
  /** What the power cut after this life dropped (power-loss mode). */
  cut: Pick<PowerLossStats, 'unsyncedBytes' | 'pendingOps' | 'fsyncs' | 'syncedBytes'> | undefined;
}

export class Fleet {
  readonly lives: Life[] = [];
  /** Every stdout event of each life, in order (for the trace). */
  readonly logs: DeviceEvent[][] = [];
  #device: DeviceProcess | undefined;
  #life: Life | undefined;
  #ioTimer: NodeJS.Timeout | undefined;
  #nextN = 1;
  #lastVolatile = 0;
  #afterCut = false;

  constructor(
    private readonly opts: FleetOptions,
    private readonly timeline: Timeline,
  ) {}

  get accepted(): number {
    return this.lives.reduce((sum, l) => sum + l.accepted.length, 0);
  }

  allAccepted(): number[] {
    return this.lives.flatMap((l) => l.accepted);
  }

  /** Starts the next life and resolves once its client is open. */
  async start(): Promise<void> {
    const o = this.opts;
    const spawnedAt = performance.now();
    const device = spawnDevice({
      script: deviceScript,
      execArgv: ['--import', 'tsx'],
      env: {
        HF_BROKER: o.broker,
        HF_CLIENT_ID: o.clientId,
        HF_CACHE_DIR: o.cacheDir,
        HF_DURABILITY: o.durability,
        HF_RATE: String(o.rate),
        HF_TIMEOUT_MS: String(o.timeoutMs),
        HF_N_START: String(this.#nextN),
        ...(o.flushMs === undefined ? {} : { HF_FLUSH_MS: String(o.flushMs) }),
        // tsx would otherwise write its compile cache from the device process and count as flash wear.
        TSX_DISABLE_CACHE: '1',
        ...o.deviceEnv,
        ...(this.#afterCut ? o.powerLoss?.afterBootEnv : {}),
      },
    });
    const life: Life = { index: this.lives.length, pid: device.pid, accepted: [], end: 'running', io: undefined, volatileAtKill: 0, maxMemory: 0, confirmedN: 0, ioAtOpen: undefined, startMs: 0, alarms: [], cut: undefined };
    this.lives.push(life);
    this.logs.push(device.events);
    this.#device = device;
    this.#life = life;
    device.on('event', (e) => this.#onEvent(life, e));
    this.#ioTimer = setInterval(() => {
      life.io = readProcIo(device.pid) ?? life.io;
    }, IO_SAMPLE_MS);
    await device.waitForEvent((e) => e.open === true, OPEN_TIMEOUT_MS);
    life.ioAtOpen = readProcIo(device.pid);
    life.startMs = Math.round(performance.now() - spawnedAt);
  }

  #onEvent(life: Life, e: DeviceEvent): void {
    if (typeof e.n === 'number') {
      life.accepted.push(e.n);
      this.#nextN = e.n + 1;
    } else if (e.ev === 'quarantine' || e.ev === 'error') {
      life.alarms.push(`${String(e.ev)}: ${JSON.stringify(e.data)}`);
    } else if (typeof e.d === 'number') {
      life.confirmedN = Math.max(life.confirmedN, e.d);
    } else if (Array.isArray(e.s)) {
      const [wall, , connected, memory, inflight, cached] = e.s as number[];
      this.timeline.sample(wall!, memory!, cached!, connected === 1);
      life.maxMemory = Math.max(life.maxMemory, memory!);
      this.#lastVolatile = memory! + inflight!;
    }
  }

  /**
   * The power cut: read the disk counters, SIGKILL, and wait until the process is gone; with a
   * power-loss layer, then drop everything it had not synced.
   */
  async kill(): Promise<Life> {
    const device = this.#device!;
    const life = this.#life!;
    clearInterval(this.#ioTimer);
    life.io = readProcIo(device.pid) ?? life.io;
    life.volatileAtKill = this.#lastVolatile;
    const exit = device.kill('SIGKILL');
    life.end = 'kill';
    await exit;
    this.#device = undefined;
    if (this.opts.powerLoss) {
      const { unsyncedBytes, pendingOps, fsyncs, syncedBytes } = await this.opts.powerLoss.powerCut();
      life.cut = { unsyncedBytes, pendingOps, fsyncs, syncedBytes };
      this.#afterCut = true;
    }
    return life;
  }

  /** Stops publishing, waits until everything is delivered and the client is closed. */
  async drain(timeoutMs: number): Promise<Life> {
    const device = this.#device!;
    const life = this.#life!;
    clearInterval(this.#ioTimer);
    process.kill(device.pid, 'SIGUSR2');
    const done = await device.waitForEvent((e) => e.drained === true, timeoutMs);
    life.io = (done.io as ProcIo | undefined) ?? life.io;
    life.end = 'drain';
    await device.exited;
    this.#device = undefined;
    return life;
  }

  /** Last resort when a run fails half-way. */
  async abort(): Promise<void> {
    clearInterval(this.#ioTimer);
    await this.#device?.kill('SIGKILL');
  }

  stderr(): string {
    return this.#device?.stderr() ?? '';
  }
}
