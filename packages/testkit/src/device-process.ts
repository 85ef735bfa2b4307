import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { trackChild } from './children.js';
import { slowFsync, type SyncCounts } from './slow-fsync.js';

/*
 * A device script in its own Node process, so a test can SIGKILL it (a power cut) and
 * start it again on the same cache. The script reports what it did as JSON lines on stdout.
 */

export interface DeviceOptions {
  /** Path of the script, run with `node`. */
  script: string;
  /**
   * The Node binary that runs the script, e.g. another version or another CPU's build from
   * `platformNode()`.
   * @default process.execPath
   */
  node?: string;
  args?: string[];
  /** Added to (and overriding) process.env. */
  env?: Record<string, string>;
  /** Node flags before the script, e.g. ['--import', 'tsx'] for a .ts script. */
  execArgv?: string[];
  cwd?: string;
  /**
   * Runs the child on slow flash: every fsync, fdatasync, msync(MS_SYNC), sync_file_range and O_DSYNC
   * write takes this many ms longer, and each is counted (`syncCounts()`). 0 counts without delaying.
   * Needs a C compiler to build the shim; throws, naming what is missing, without one.
   * @default undefined (no shim)
   */
  slowFsyncMs?: number;
}

export interface DeviceExit {
  code: number | null;
  signal: string | null;
}

export type DeviceEvent = Record<string, unknown>;

export interface DeviceProcess {
  readonly pid: number;
  /** Every JSON object the child printed on stdout, one per line, in order. */
  readonly events: DeviceEvent[];
  /** stdout lines that were not JSON objects. */
  readonly lines: string[];
  on(event: 'event', fn: (e: DeviceEvent) => void): void;
  /** First event (already received or future) matching `pred`; rejects on timeout or exit. */
  waitForEvent(pred: (e: DeviceEvent) => boolean, timeoutMs: number): Promise<DeviceEvent>;
  /** Send `signal` (default SIGKILL) and resolve on exit. */
  kill(signal?: NodeJS.Signals): Promise<DeviceExit>;
  /** Resolves when the process has exited and its stdout is fully read. */
  readonly exited: Promise<DeviceExit>;
  /** Captured stderr (the last 1 MiB), for diagnostics. */
  stderr(): string;
  /** Durable writes so far, from every thread and child of the process (also after a SIGKILL); needs `slowFsyncMs`. */
  syncCounts(): SyncCounts;
}

const STDERR_KEEP = 1 << 20;
// After 'exit', wait this long at most for stdout to drain (a grandchild may hold the pipe).
const CLOSE_GRACE_MS = 1_000;

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function spawnDevice(opts: DeviceOptions): DeviceProcess {
  const flash = opts.slowFsyncMs === undefined ? undefined : slowFsync(opts.slowFsyncMs, opts.env?.LD_PRELOAD ?? process.env.LD_PRELOAD);
  const node = opts.node ?? process.execPath;
  const child = spawn(node, [...(opts.execArgv ?? []), opts.script, ...(opts.args ?? [])], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env, ...flash?.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    // spawn() reports failures asynchronously; swallow that duplicate report.
    child.once('error', () => {});
    throw new Error(`spawnDevice: could not start ${node} ${opts.script}`);
  }
  trackChild(child);

  const emitter = new EventEmitter();
  const events: DeviceEvent[] = [];
  const lines: string[] = [];
  let stderrText = '';
  let partial = '';
  let exitInfo: DeviceExit | undefined;

  const handleLine = (line: string): void => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      lines.push(line);
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      lines.push(line);
      return;
    }
    const event = value as DeviceEvent;
    events.push(event);
    emitter.emit('event', event);
  };

  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) handleLine(line);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderrText = (stderrText + chunk).slice(-STDERR_KEEP);
  });

  let exitEmitted = false;
  const exited = new Promise<DeviceExit>((resolve) => {
    // Runs on 'close', or CLOSE_GRACE_MS after 'exit', or on a spawn error: whichever first.
    const finish = (): void => {
      if (exitEmitted) return;
      exitEmitted = true;
      if (partial !== '') handleLine(partial);
      partial = '';
      resolve(exitInfo ?? { code: null, signal: null });
      emitter.emit('exit');
    };
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      setTimeout(finish, CLOSE_GRACE_MS).unref();
    });
    child.once('close', finish);
    child.once('error', (err) => {
      stderrText += `\n${err.message}`;
      finish();
    });
  });

  const describe = (): string => {
    const last = events.slice(-5).map((e) => JSON.stringify(e)).join('\n  ');
    const err = tail(stderrText, 20);
    return `${events.length} events so far${last !== '' ? `; last:\n  ${last}` : ''}${err !== '' ? `\nstderr:\n${err}` : ''}`;
  };

  return {
    pid: child.pid,
    events,
    lines,
    exited,
    on: (_event: 'event', fn: (e: DeviceEvent) => void) => {
      emitter.on('event', fn);
    },
    waitForEvent(pred, timeoutMs) {
      const found = events.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise<DeviceEvent>((resolve, reject) => {
        const cleanup = (): void => {
          clearTimeout(timer);
          emitter.off('event', onEvent);
          emitter.off('exit', onExit);
        };
        const onEvent = (e: DeviceEvent): void => {
          if (!pred(e)) return;
          cleanup();
          resolve(e);
        };
        const onExit = (): void => {
          cleanup();
          const how = exitInfo?.signal ?? `code ${String(exitInfo?.code)}`;
          reject(new Error(`device ${child.pid} exited (${how}) before the awaited event; ${describe()}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`device ${child.pid}: no matching event within ${timeoutMs} ms; ${describe()}`));
        }, timeoutMs);
        emitter.on('event', onEvent);
        if (exitEmitted) onExit();
        else emitter.on('exit', onExit);
      });
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (exitInfo === undefined) child.kill(signal);
      return exited;
    },
    stderr: () => stderrText,
    syncCounts() {
      if (flash === undefined) throw new Error('syncCounts(): this device was spawned without slowFsyncMs');
      return flash.counts();
    },
  };
}
