/**
 * One device of the campaign and its lives: a child process at a time on the same cache, killed
 * (a power cut) and started again, each life continuing the reading numbers after the last one
 * accepted. A life that dies without being killed is a crash; it is started again, as systemd would.
 * The ground truth is what each life printed, synchronously, as accepted.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawnDevice, type DeviceEvent, type DeviceExit, type DeviceProcess } from '../device-process.js';

export interface DeviceSpec {
  /** Also the MQTT client id. */
  clientId: string;
  mode: 'journal' | 'spill';
  script: string;
  execArgv: string[];
  /** The device protocol's environment (HF_BROKER, HF_CACHE_DIR, …) and any preload. */
  env: Record<string, string>;
  /** The file commands are appended to (HF_CONTROL). */
  controlFile: string;
}

export interface Accepted {
  n: number;
  seq: number;
  /** The poison topic it went to, if any. */
  poison?: 'refused' | 'forbidden';
}

export interface Life {
  index: number;
  pid: number;
  accepted: Accepted[];
  /**
   * The reading the device was handing to publish() when the life ended, with no acceptance printed: a
   * SIGKILL between publish() and the device's line hides whether it was accepted (journal mode replays
   * it if it was). Never reused by the next life; neither expected nor a stranger if it arrives.
   */
  unconfirmed: number | undefined;
  end: 'running' | 'kill' | 'drained' | 'crash' | 'wedged' | 'open-failed';
  exit?: DeviceExit;
  /** Whether the client offers the worker fault hook. */
  hooks: boolean;
  /** Seqs the client reported as dead letters (events and the final listing). */
  deadLetters: Set<number>;
  /** The `data` of every worker-restart event. */
  workerRestarts: unknown[];
  /** Worker faults this life injected. */
  injected: number;
  /** Readings the client reported evicted (evict events). */
  evicted: number;
  quarantines: number;
  /** 'error' events, as `CODE: message`. */
  errors: string[];
  maxRssMb: number;
  /** The last stats line: [state, connected, memory, inflight, cached, rssMb, delivered]. */
  stats: number[] | undefined;
  /** Every stats line, each prefixed with performance.now() when it arrived, for the trace. */
  statsLog: number[][];
  /** Every other non-reading line, with `at`: performance.now() when it arrived. */
  log: DeviceEvent[];
}

/** What a wedged device's cache still held at the end (read by a separate, read-only process). */
export interface Leftover {
  cached: Set<number>;
  deadLetters: number[];
  /** Journal intake log segments not yet committed to the cache (their readings are not listed). */
  intakeSegments: number;
}

const OPEN_TIMEOUT_MS = 30_000;
const ACK_TIMEOUT_MS = 5_000;
// Restarts after a crash, as systemd's Restart=always would, but never faster than this.
const RESTART_DELAY_MS = 300;

export class ChaosDevice {
  readonly lives: Life[] = [];
  #process: DeviceProcess | undefined;
  #nextN = 1;
  #nextCommand = 1;
  /** Set while the campaign means to stop the process (kill, drain, abort): its exit is no crash. */
  #expectingExit = false;
  #stopped = false;
  #restarting: Promise<void> | undefined;

  constructor(
    readonly spec: DeviceSpec,
    private readonly log: (line: string) => void,
  ) {
    writeFileSync(spec.controlFile, '');
  }

  /** performance.now(); the trace shows it as seconds since the faults began. */
  #now(): number {
    return performance.now();
  }

  get life(): Life | undefined {
    return this.lives.at(-1);
  }

  get hooks(): boolean {
    return this.lives.some((l) => l.hooks);
  }

  /** Readings waiting anywhere in the client (memory, in flight, cache) at the last stats line, or in its cache at open. */
  get backlog(): number {
    const s = this.life?.stats;
    if (s !== undefined) return s[2]! + s[3]! + s[4]!;
    const open = this.life?.log.find((e) => e.open === true);
    return typeof open?.cached === 'number' ? open.cached : 0;
  }

  /** Starts the next life; resolves once its client is open (or its open() failed). */
  async start(): Promise<void> {
    // A track still playing when a failed seed is torn down must not start a process after abort().
    if (this.#stopped) return;
    const s = this.spec;
    const device = spawnDevice({
      script: s.script,
      execArgv: s.execArgv,
      cwd: dirname(s.script),
      env: { ...s.env, HF_N_START: String(this.#nextN), HF_CONTROL: s.controlFile },
    });
    const life: Life = {
      index: this.lives.length, pid: device.pid, accepted: [], unconfirmed: undefined, end: 'running', hooks: false, deadLetters: new Set(), workerRestarts: [],
      injected: 0, evicted: 0, quarantines: 0, errors: [], maxRssMb: 0, stats: undefined, statsLog: [], log: [],
    };
    this.lives.push(life);
    this.#process = device;
    this.#expectingExit = false;
    device.on('event', (e) => this.#onEvent(life, e));
    void device.exited.then((exit) => this.#onExit(life, device, exit));
    await device.waitForEvent((e) => e.open === true || typeof e.openFailed === 'string', OPEN_TIMEOUT_MS).catch((err: Error) => {
      life.errors.push(`start: ${err.message.split('\n')[0]}`);
    });
  }

  #onEvent(life: Life, e: DeviceEvent): void {
    if (typeof e.try === 'number') {
      life.unconfirmed = e.try;
      this.#nextN = Math.max(this.#nextN, e.try + 1);
      return;
    }
    if (typeof e.n === 'number') {
      life.unconfirmed = undefined;
      const a: Accepted = { n: e.n, seq: e.seq as number };
      if (e.poison === 'refused' || e.poison === 'forbidden') a.poison = e.poison;
      life.accepted.push(a);
      this.#nextN = Math.max(this.#nextN, e.n + 1);
      return;
    }
    if (Array.isArray(e.s)) {
      life.stats = e.s as number[];
      life.statsLog.push([this.#now(), ...life.stats]);
      life.maxRssMb = Math.max(life.maxRssMb, life.stats[5] ?? 0);
      return;
    }
    life.log.push({ at: this.#now(), ...e });
    if (e.open === true) life.hooks = e.hooks === true;
    else if (typeof e.openFailed === 'string') life.errors.push(`open failed: ${e.openFailed}`);
    else if (Array.isArray(e.deadLetters)) for (const seq of e.deadLetters as number[]) life.deadLetters.add(seq);
    else if (e.ev === 'dead-letter') for (const seq of ((e.data as { seqs?: number[] }).seqs ?? [])) life.deadLetters.add(seq);
    else if (e.ev === 'worker-restart') life.workerRestarts.push(e.data);
    else if (e.ev === 'evict') life.evicted += (e.data as { messages?: number }).messages ?? 0;
    else if (e.ev === 'quarantine') life.quarantines++;
    else if (e.ev === 'error') life.errors.push(String(e.data));
  }

  #onExit(life: Life, device: DeviceProcess, exit: DeviceExit): void {
    life.exit = exit;
    if (this.#expectingExit || this.#process !== device) return;
    life.end = life.log.some((e) => typeof e.openFailed === 'string') ? 'open-failed' : 'crash';
    // The error line of the crash, not the end of its stack.
    const tail = device.stderr().trim().split('\n').slice(-30);
    const stderr = tail.find((l) => /^\s*\w*(Error|Exception)\b.*:|FATAL|Abort/.test(l))?.trim() ?? tail.at(-1) ?? '';
    if (stderr !== '') life.errors.push(stderr);
    this.log(`${this.spec.clientId} life ${life.index} died by itself (${exit.signal ?? `code ${exit.code}`})${stderr ? `: ${stderr}` : ''}`);
    if (this.#stopped) return;
    this.#restarting = new Promise<void>((resolve) => setTimeout(resolve, RESTART_DELAY_MS)).then(() => (this.#stopped ? undefined : this.start()));
  }

  /** Waits for a restart after a crash, if one is under way. */
  async settled(): Promise<void> {
    while (this.#restarting !== undefined) {
      const r = this.#restarting;
      await r;
      if (this.#restarting === r) this.#restarting = undefined;
    }
  }

  /** The power cut: SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    await this.settled();
    const device = this.#process;
    const life = this.life;
    if (device === undefined || life === undefined || life.end !== 'running') return;
    this.#expectingExit = true;
    life.end = 'kill';
    await device.kill('SIGKILL');
  }

  /** Appends a command for the running life; resolves with its ack (false if refused or unanswered). */
  async command(cmd: Record<string, unknown>): Promise<boolean> {
    const device = this.#process;
    if (device === undefined || this.life?.end !== 'running') return false;
    const id = this.#nextCommand++;
    appendFileSync(this.spec.controlFile, `${JSON.stringify({ ...cmd, id })}\n`);
    const ack = await device.waitForEvent((e) => e.ack === id, ACK_TIMEOUT_MS).catch(() => undefined);
    if (ack?.ok === true && cmd.do === 'inject') this.life.injected++;
    return ack?.ok === true;
  }

  /**
   * Stops publishing and waits until the client has delivered everything and listed its dead letters,
   * at most until `deadline` (performance.now()); a device that does not get there is wedged. A life
   * that crashes meanwhile stays a crash, and the restarted one is asked again.
   */
  async drain(deadline: number): Promise<boolean> {
    for (;;) {
      await this.settled();
      const device = this.#process;
      const life = this.life;
      if (device === undefined || life === undefined || life.end !== 'running') return false;
      process.kill(device.pid, 'SIGUSR2');
      const done = await device.waitForEvent((e) => e.drained === true, Math.max(0, deadline - performance.now())).catch(() => undefined);
      if (done === undefined && life.end !== 'running') continue;
      this.#expectingExit = true;
      life.end = done === undefined ? 'wedged' : 'drained';
      if (done !== undefined) await device.waitForEvent((e) => e.closed === true, 10_000).catch(() => undefined);
      await device.kill('SIGKILL');
      return done !== undefined;
    }
  }

  /** Lists what the cache holds, with the device script in read-only mode (HF_INSPECT=1); the device must be stopped. */
  async inspect(): Promise<Leftover | undefined> {
    const s = this.spec;
    const reader = spawnDevice({ script: s.script, execArgv: s.execArgv, cwd: dirname(s.script), env: { ...s.env, HF_INSPECT: '1' } });
    const found = await reader.waitForEvent((e) => e.inspected === true, OPEN_TIMEOUT_MS).catch((err: Error) => {
      this.log(`${s.clientId}: could not inspect the cache: ${err.message.split('\n')[0]}`);
      return undefined;
    });
    await reader.kill('SIGKILL');
    if (found === undefined) return undefined;
    return { cached: new Set(found.cached as number[]), deadLetters: found.deadLetters as number[], intakeSegments: found.intakeSegments as number };
  }

  /** Last resort: no more restarts, and the running life is killed. */
  async abort(): Promise<void> {
    this.#stopped = true;
    this.#expectingExit = true;
    await this.#restarting?.catch(() => undefined);
    this.#expectingExit = true;
    await this.#process?.kill('SIGKILL');
  }

  stderr(): string {
    return this.#process?.stderr() ?? '';
  }
}
