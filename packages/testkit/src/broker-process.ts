import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Broker } from './broker-types.js';
import { atParentExit, trackChild } from './children.js';
import { listensOn } from './listener-owner.js';
import { LOOPBACK, canConnect } from './ports.js';

/*
 * Lifecycle of a broker child process, shared by mosquitto and the Aedes fallback:
 * readiness by TCP polling, signals, same-port restarts, cleanup.
 */

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 20;
const UNVERIFIED_GRACE_MS = 200;
const STDERR_KEEP = 16 * 1024;

/** What differs between mosquitto and Aedes. */
export interface BrokerBackend {
  readonly kind: 'mosquitto' | 'aedes';
  readonly protocolVersions: readonly number[];
  /** (Re)write any config for `port` and spawn the broker. */
  spawn(port: number): ChildProcess;
  /** The broker's own log, for error messages. */
  logTail(): string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class BrokerStartError extends Error {
  constructor(
    message: string,
    /** The port was taken between freePort() and the bind: retry on another port. */
    readonly addressInUse: boolean,
  ) {
    super(message);
    this.name = 'BrokerStartError';
  }
}

interface Running {
  child: ChildProcess;
  exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  stderr: string;
}

/**
 * A broker process must not keep the test process alive on its own (a forgotten close()
 * would hang the run; the exit hook kills it instead), except while we wait for it.
 */
function setRef(child: ChildProcess, ref: boolean): void {
  for (const handle of [child, child.stdin, child.stderr] as Array<{ ref?: () => void; unref?: () => void } | null>) {
    if (handle === null) continue;
    if (ref) handle.ref?.();
    else handle.unref?.();
  }
}

function describeExit(exit: ExitInfo): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${String(exit.code)}`;
}

export class ProcessBroker implements Broker {
  readonly host = LOOPBACK;
  readonly kind: 'mosquitto' | 'aedes';
  readonly protocolVersions: readonly number[];
  private current: Running | undefined;
  private paused = false;
  private closing: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  // A broker the caller forgot to close() still leaves no temp dir behind.
  private readonly cancelDirCleanup: () => void;

  constructor(
    private readonly backend: BrokerBackend,
    private portNumber: number,
    readonly dir: string,
  ) {
    this.kind = backend.kind;
    this.protocolVersions = backend.protocolVersions;
    this.cancelDirCleanup = atParentExit(() => rmSync(dir, { recursive: true, force: true }));
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `mqtt://${LOOPBACK}:${this.portNumber}`;
  }

  get pid(): number | undefined {
    return this.current?.child.pid;
  }

  /**
   * First start only: the port came from freePort() and may have been taken meanwhile,
   * so move to a fresh port. Later starts must keep the port clients know about.
   */
  async firstStart(nextPort: () => Promise<number>, attempts: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.launch();
        return;
      } catch (err) {
        if (!(err instanceof BrokerStartError && err.addressInUse) || attempt >= attempts) throw err;
        this.portNumber = await nextPort();
      }
    }
  }

  async start(): Promise<void> {
    if (this.closing !== undefined) throw new Error(`${this.kind} broker is closed`);
    // A concurrent start() waits for the same readiness instead of returning early.
    if (this.starting !== undefined) return this.starting;
    if (this.current !== undefined) return;
    this.starting = this.launch().finally(() => (this.starting = undefined));
    return this.starting;
  }

  async stop(): Promise<void> {
    const run = this.current;
    if (run === undefined) return;
    run.child.kill('SIGTERM');
    // A stopped process keeps SIGTERM pending until it is continued.
    if (this.paused) run.child.kill('SIGCONT');
    const exit = await this.waitExit(run, STOP_TIMEOUT_MS);
    if (exit === undefined) {
      run.child.kill('SIGKILL');
      await this.waitExit(run);
    }
    this.forget(run);
  }

  async kill(): Promise<void> {
    const run = this.current;
    if (run === undefined) return;
    run.child.kill('SIGKILL');
    await this.waitExit(run);
    this.forget(run);
  }

  pause(): void {
    const run = this.current;
    if (run === undefined) throw new Error(`${this.kind} broker is not running`);
    run.child.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    const run = this.current;
    if (run === undefined || !this.paused) return;
    run.child.kill('SIGCONT');
    this.paused = false;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const run = this.current;
      if (run !== undefined) {
        if (this.paused) run.child.kill('SIGCONT');
        run.child.kill('SIGKILL');
        await this.waitExit(run);
      }
      await rm(this.dir, { recursive: true, force: true });
      this.cancelDirCleanup();
    })();
    return this.closing;
  }

  private async launch(): Promise<void> {
    const child = this.backend.spawn(this.portNumber);
    trackChild(child);
    const run: Running = { child, exited: Promise.resolve({ code: null, signal: null }), exit: undefined, stderr: '' };
    run.exited = new Promise<ExitInfo>((resolve) => {
      // 'close' rather than 'exit': by then stderr is fully read for error messages.
      child.once('close', (code, signal) => resolve({ code, signal }));
      child.once('error', (err) => {
        run.stderr += `\n${err.message}`;
        resolve({ code: null, signal: null });
      });
    });
    // Also covers a crash: the broker then simply counts as stopped.
    void run.exited.then((exit) => {
      run.exit = exit;
      this.forget(run);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      run.stderr = (run.stderr + chunk).slice(-STDERR_KEEP);
    });
    // Writes to a dead child's stdin would otherwise surface as an unhandled EPIPE.
    (child.stdin as Socket | null)?.on('error', () => {});
    this.current = run;
    this.paused = false;
    await this.waitReady(run);
    setRef(child, false);
  }

  private async waitReady(run: Running): Promise<void> {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    while (performance.now() < deadline) {
      const accepted = await canConnect(this.portNumber, LOOPBACK, 250);
      // If the port was stolen, the connect reached the thief: make sure the listener is
      // our child's. Where /proc cannot tell, give a losing bind time to show as an exit.
      const ours = accepted && run.child.pid !== undefined ? listensOn(run.child.pid, this.portNumber) : false;
      if (accepted && ours === undefined) await delay(UNVERIFIED_GRACE_MS);
      if (run.exit === undefined && (run.child.exitCode !== null || run.child.signalCode !== null)) await run.exited;
      if (run.exit !== undefined) throw this.startError(run, `exited during start (${describeExit(run.exit)})`);
      if (ours !== false) return;
      await delay(POLL_MS);
    }
    run.child.kill('SIGKILL');
    await run.exited;
    throw this.startError(run, `did not accept TCP connections within ${READY_TIMEOUT_MS} ms`);
  }

  private forget(run: Running): void {
    if (this.current !== run) return;
    this.current = undefined;
    this.paused = false;
  }

  private startError(run: Running, what: string): BrokerStartError {
    const log = this.backend.logTail();
    const text = `${run.stderr}\n${log}`;
    const addressInUse = /address already in use|EADDRINUSE/i.test(text);
    const parts = [`${this.kind} on ${LOOPBACK}:${this.portNumber} ${what}`];
    if (run.stderr.trim() !== '') parts.push(`stderr:\n${run.stderr.trim()}`);
    if (log !== '') parts.push(`log (${this.dir}):\n${log}`);
    return new BrokerStartError(parts.join('\n'), addressInUse);
  }

  /** Wait for the process to exit, keeping the event loop alive meanwhile. */
  private async waitExit(run: Running, timeoutMs?: number): Promise<ExitInfo | undefined> {
    setRef(run.child, true);
    if (timeoutMs === undefined) return run.exited;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([run.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
