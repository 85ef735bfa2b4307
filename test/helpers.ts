/** Shared plumbing for the test files: the device fixture, reading numbers and temp dirs. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { spawnDevice, startAuditor, startBroker, startLinkProxy, type AuditMessage, type Auditor, type Broker, type BrokerOptions, type DeviceProcess, type LinkProxy, type Reading } from '@holdfast/testkit';

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

export interface DeviceEnv {
  broker: string;
  clientId: string;
  cacheDir: string;
  rate?: number;
  count?: number;
  nStart?: number;
  timeoutMs?: number;
  durability?: 'spill' | 'journal';
  protocol?: 4 | 5;
  after?: 'drain' | 'flush' | 'close' | 'idle';
  cleanSession?: boolean;
  /** SIGKILL itself right after publish() accepts this reading number (same tick). */
  killAt?: number;
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
  if (e.cleanSession) env.HF_CLEAN = '1';
  if (e.killAt !== undefined) env.HF_KILL_AT = String(e.killAt);
  return spawnDevice({ script: deviceScript, execArgv: ['--import', 'tsx'], env });
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
export async function waitUntil(condition: () => boolean, timeoutMs: number, what = 'the condition'): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
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
