/** Shared plumbing for the test files: the device fixture, reading numbers, temp dirs, brokers, ports and waits. */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, type TestContext } from 'node:test';
import type { HoldfastClient } from 'holdfast';
import {
  freePort,
  powerLossUnavailable,
  spawnDevice,
  startAuditor,
  startBroker,
  startLinkProxy,
  startPowerLossLayer,
  type AuditMessage,
  type Auditor,
  type Broker,
  type BrokerOptions,
  type DeviceProcess,
  type LinkProxy,
  type PowerLossLayer,
  type Reading,
} from '@holdfast/testkit';

export const deviceScript = fileURLToPath(new URL('./fixtures/device.ts', import.meta.url));

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `holdfast-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A real 1 MiB tmpfs (root only; CI runs as root), for disk-full tests. `remove()` unmounts it. */
export function tinyTmpfs(prefix: string): { path: string; remove(): void } {
  const base = tempDir(prefix);
  const path = join(base.path, 'fs');
  mkdirSync(path);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path]);
  return {
    path,
    remove: () => {
      execFileSync('umount', ['-l', path]);
      base.remove();
    },
  };
}

/** Writes `path` until its file system is full (ENOSPC). */
export function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * A power-loss layer (testkit) for this test, or undefined once the test is skipped because the layer
 * cannot run here (no /dev/fuse, compiler or libfuse3). With CI=true that is a failure instead.
 */
export async function powerLossLayer(t: TestContext): Promise<PowerLossLayer | undefined> {
  const why = powerLossUnavailable();
  if (why === undefined) return startPowerLossLayer();
  if (process.env.CI === 'true') throw new Error(`CI=true and ${why}`);
  t.skip(why);
  return undefined;
}

export interface DeviceEnv {
  broker: string;
  clientId: string;
  cacheDir: string;
  rate?: number;
  count?: number;
  nStart?: number;
  timeoutMs?: number;
  durability?: 'spill' | 'journal';
  qos?: 1 | 2;
  protocol?: 4 | 5;
  after?: 'drain' | 'flush' | 'close' | 'idle' | 'watch';
  cleanSession?: boolean;
  /** SIGKILL itself right after publish() accepts this reading number (same tick). */
  killAt?: number;
  /** Bytes of padding in every reading. */
  pad?: number;
  /** This reading number goes to `topic` with `pad` bytes of padding instead (a message the broker refuses). */
  poison?: { at: number; topic?: string; pad?: number };
  /** Call flush() every this many ms and report what it confirmed. */
  flushMs?: number;
  /** SIGKILL itself right after reporting this many flush() confirmations (same tick). */
  killAtConfirm?: number;
  /** SIGKILL itself as soon as stats().delivered reaches this (polled every 2 ms). */
  killAtDelivered?: number;
  /** Added to the device's environment (e.g. LD_PRELOAD of a slow-fsync shim). */
  extraEnv?: Record<string, string>;
  /** Kill the worker thread (the test-only fault hook, `faultKind`, default 'throw') right after this reading. */
  faultAt?: number;
  faultKind?: 'throw' | 'exit' | 'oom' | 'hang';
}

export function startDevice(e: DeviceEnv): DeviceProcess {
  const env: Record<string, string> = {
    HF_BROKER: e.broker,
    HF_CLIENT_ID: e.clientId,
    HF_CACHE_DIR: e.cacheDir,
    HF_RATE: String(e.rate ?? 100),
    HF_N_START: String(e.nStart ?? 1),
    HF_TIMEOUT_MS: String(e.timeoutMs ?? 1000),
    HF_DURABILITY: e.durability ?? 'spill',
    HF_PROTOCOL: String(e.protocol ?? 5),
    HF_AFTER: e.after ?? 'idle',
  };
  if (e.count !== undefined) env.HF_COUNT = String(e.count);
  if (e.qos !== undefined) env.HF_QOS = String(e.qos);
  if (e.cleanSession) env.HF_CLEAN = '1';
  if (e.killAt !== undefined) env.HF_KILL_AT = String(e.killAt);
  if (e.faultAt !== undefined) Object.assign(env, { HF_FAULT_AT: String(e.faultAt), HF_FAULT_KIND: e.faultKind ?? 'throw', HOLDFAST_TEST_HOOKS: '1' });
  if (e.pad !== undefined) env.HF_PAD = String(e.pad);
  if (e.poison !== undefined) {
    env.HF_POISON_AT = String(e.poison.at);
    if (e.poison.topic !== undefined) env.HF_POISON_TOPIC = e.poison.topic;
    if (e.poison.pad !== undefined) env.HF_POISON_PAD = String(e.poison.pad);
  }
  if (e.flushMs !== undefined) env.HF_FLUSH_MS = String(e.flushMs);
  if (e.killAtConfirm !== undefined) env.HF_KILL_AT_CONFIRM = String(e.killAtConfirm);
  if (e.killAtDelivered !== undefined) env.HF_KILL_AT_DELIVERED = String(e.killAtDelivered);
  return spawnDevice({ script: deviceScript, execArgv: ['--import', 'tsx'], env: { ...env, ...e.extraEnv } });
}

/** The reading numbers (n) a device reported as accepted. */
export function acceptedNumbers(device: DeviceProcess): number[] {
  return device.events.filter((e) => typeof e.n === 'number').map((e) => e.n as number);
}

/**
 * Audits by the device's own reading number `n` in the JSON payload. It works on every broker
 * (Aedes speaks only MQTT 3.1.1, so it cannot carry holdfast's seq as a user property).
 */
export function extractReadingNumber(msg: AuditMessage): Reading[] {
  try {
    const body = JSON.parse(msg.payload.toString()) as { device?: unknown; n?: unknown };
    if (typeof body.device === 'string' && typeof body.n === 'number') return [{ device: body.device, seq: body.n }];
  } catch {
    // Not a device reading.
  }
  return [];
}

/**
 * Skips a test that cannot run here for a missing tool, path or privilege, except under CI (CI=true):
 * there a skip would hide an untested guarantee, so the test fails naming what is missing.
 */
export function skipUnlessCI(t: TestContext, missing: string): void {
  if (process.env.CI === 'true') throw new Error(`CI runs every test, but this one cannot run: ${missing}`);
  t.skip(missing);
}

/** Root mounts the tmpfs of the disk-full tests; the reason to give skipUnlessCI() otherwise. */
export function needsRoot(): string | undefined {
  return process.getuid?.() === 0 ? undefined : 'needs root to mount a tmpfs (CI runs as root)';
}

/**
 * The libfaketime the system's own `faketime` preloads (its LD_PRELOAD, which may hold the dynamic
 * linker's $LIB token), or undefined when faketime is not installed. The chaos campaign's lookup.
 */
export { findLibfaketime as faketimeLibrary } from '@holdfast/testkit';

/**
 * Starts something on `count` ports from freePort(), trying fresh ports when one was taken between
 * the choice and the bind (EADDRINUSE in the error), for servers that cannot bind port 0 themselves.
 */
export async function onFreePorts<T>(count: number, start: (ports: number[]) => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
    try {
      return await start(ports);
    } catch (err) {
      if (attempt >= attempts || !/EADDRINUSE|address already in use/i.test(String((err as Error).message))) throw err;
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface BrokerRig {
  broker: Broker;
  proxy: LinkProxy;
  /** 5 on Mosquitto; 4 on the Aedes fallback, which speaks only MQTT 3.1.1. */
  protocol: 4 | 5;
}

async function startRig(rig: BrokerRig, options: BrokerOptions): Promise<void> {
  rig.broker = await startBroker(options);
  rig.proxy = await startLinkProxy({ targetPort: rig.broker.port });
  rig.protocol = rig.broker.protocolVersions.includes(5) ? 5 : 4;
}

async function stopRig(rig: BrokerRig): Promise<void> {
  await rig.proxy?.close();
  await rig.broker?.close();
}

/**
 * Registers before/after hooks that start a real broker and the fault proxy in front of it, for the
 * test file that calls it. Read the fields inside tests (they are set by the before hook).
 */
export function brokerWithProxy(options: BrokerOptions = {}): BrokerRig {
  const rig = {} as BrokerRig;
  before(() => startRig(rig, options));
  after(() => stopRig(rig));
  return rig;
}

export interface AuditedRig extends BrokerRig {
  /** Subscribed to sensors/# on the broker itself, counting readings by their number `n`. */
  auditor: Auditor;
}

/** brokerWithProxy() plus a delivery auditor on the broker; one hook each way, so the order is fixed. */
export function auditedBrokerWithProxy(options: BrokerOptions = {}): AuditedRig {
  const rig = {} as AuditedRig;
  before(async () => {
    await startRig(rig, options);
    rig.auditor = await startAuditor({ url: rig.broker.url, topics: 'sensors/#', protocolVersion: rig.protocol, extract: extractReadingNumber });
  });
  after(async () => {
    await rig.auditor?.close();
    await stopRig(rig);
  });
  return rig;
}

/** Polls until `condition` holds; fails with `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, what = 'the condition'): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * How a client ends up within `timeoutMs`: 'drained', or why not (a dead worker rejects drained() and
 * emits HOLDFAST_WORKER_CRASHED). For tests of paths that wedge or crash the worker: they fail with
 * the reason instead of hanging.
 */
export async function drainOutcome(client: HoldfastClient, timeoutMs: number): Promise<string> {
  const errors = new Set<string>();
  client.on('error', (err: { code: string; message: string }) => errors.add(`${err.code}: ${err.message}`));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`not drained within ${timeoutMs} ms; stats ${JSON.stringify(client.stats())}`), timeoutMs)));
  const drained = client.drained().then(
    () => 'drained',
    (err: { code: string; message: string }) => `drained() rejected with ${err.code}: ${err.message}`,
  );
  try {
    const result = await Promise.race([drained, timeout]);
    const unexplained = [...errors].filter((e) => !result.includes(e));
    return unexplained.length === 0 ? result : `${result} (errors: ${unexplained.join('; ')})`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Records what reaches this process's stderr (a worker thread's console included) while still
 * printing it, so a test can assert that nothing unexpected was printed. stop() ends the recording.
 */
export function recordStderr(): { text(): string; stop(): void } {
  const write = process.stderr.write.bind(process.stderr);
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  return { text: () => text, stop: () => void (process.stderr.write = write) };
}
