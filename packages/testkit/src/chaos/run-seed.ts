/**
 * One seed, end to end: a real Mosquitto (persistent, with an ACL that refuses one topic), the link
 * proxy in front of it (resetting the connection on another topic), an auditor subscribed to the
 * broker directly, and two devices, journal and spill, each on its own small disk. The schedule
 * plays, the faults stop, the devices catch up and drain, and each device is judged.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAuditor, type Auditor } from '../auditor.js';
import { startBroker } from '../broker.js';
import { atParentExit } from '../children.js';
import type { Broker } from '../broker-types.js';
import { extractReadingNumber } from '../extract.js';
import { startLinkProxy, type LinkProxy } from '../link-proxy.js';
import { DeviceClock } from './clock.js';
import { ChaosDevice } from './devices.js';
import { DeviceDisk } from './disk.js';
import { FaultPlayer } from './faults.js';
import { judge, type Verdict } from './invariants.js';
import { describeEvent, planSeed, type FaultKind, type SeedPlan } from './schedule.js';
import { writeTrace } from './trace.js';

export interface SeedOptions {
  seed: number;
  /** The fault window; then faults stop. */
  durationMs: number;
  /** Readings per second per device. */
  rate: number;
  timeoutMs: number;
  highWater: number;
  kinds: ReadonlySet<FaultKind>;
  focus: ReadonlySet<FaultKind> | undefined;
  /** The device script (the device protocol in packages/testkit/README.md) and its Node flags. */
  deviceScript: string;
  execArgv: string[];
  /** libfaketime for clock jumps; undefined leaves the devices on the real clock. */
  libfaketime: string | undefined;
  diskMb: number;
  rssBoundMb: number;
  /** The reproduction command for this seed, printed with its failures. */
  repro: string;
  log: (line: string) => void;
}

export interface SeedResult {
  seed: number;
  plan: SeedPlan;
  /** Fault events carried out. */
  faults: number;
  applied: Record<string, number>;
  skipped: string[];
  verdicts: Verdict[];
  failures: string[];
  /** Whether any device offered the worker fault hook. */
  hooks: boolean;
  repro: string;
  trace: string | undefined;
  elapsedMs: number;
}

// Devices publish this long after the faults stop, then drain.
const CALM_MS = 1000;
// Reconnect backoff (≤ 1 s), a connect timeout (2 s) and a process start fit in this.
const LIVENESS_BASE_MS = 5000;
const AUDIT_WAIT_MS = 5000;
// After the last expected arrival, a late duplicate or reordering still has this long to show.
const SETTLE_MS = 2000;
const MODES = ['journal', 'spill'] as const;
// `pattern`, not `topic`: Mosquitto 2.0 does not apply anonymous `topic` rules to a persistent session
// restored after a restart, and silently drops what it should queue for the offline auditor.
const ACL = ['pattern readwrite chaos/#', 'pattern read chaos-refused/#', 'pattern readwrite chaos-forbidden/#'];

/**
 * How long a device may take to drain once faults stop: the base, a few timeouts for a watchdog to
 * notice a stuck exchange, and its backlog at the input rate (the drain must run at least twice as
 * fast as the input, so it gains `rate` readings per second), plus the calm period.
 */
export function livenessBoundMs(backlog: number, rate: number, timeoutMs: number): number {
  return LIVENESS_BASE_MS + 3 * timeoutMs + Math.ceil((1000 * backlog) / rate) + CALM_MS;
}

export async function runSeed(o: SeedOptions): Promise<SeedResult> {
  const started = performance.now();
  const lines: string[] = [];
  const log = (line: string): void => {
    lines.push(line);
    o.log(line);
  };
  const plan = planSeed(o.seed, { durationMs: o.durationMs, devices: MODES.length, timeoutMs: o.timeoutMs, kinds: o.kinds, focus: o.focus });
  const root = mkdtempSync(join(tmpdir(), `holdfast-chaos-${o.seed}-`));
  const disks: DeviceDisk[] = [];
  // A campaign killed half-way (a test timeout, Ctrl-C) leaves no tmpfs mounted and no temp dir.
  const cancelRootCleanup = atParentExit(() => {
    for (const disk of disks) disk.remove();
    rmSync(root, { recursive: true, force: true });
  });
  const aclFile = join(root, 'acl');
  writeFileSync(aclFile, `${ACL.join('\n')}\n`, { mode: 0o644 });

  let broker: Broker | undefined;
  let proxy: LinkProxy | undefined;
  let auditor: Auditor | undefined;
  const devices: ChaosDevice[] = [];
  // The zero of the schedule, and of the trace's clock.
  let faultsBegan = performance.now();
  try {
    broker = await startBroker({ persistence: true, requireMosquitto: true, extraConfig: [`acl_file ${aclFile}`], log });
    proxy = await startLinkProxy({ targetPort: broker.port });
    proxy.disconnectOnTopic('chaos-forbidden/#');
    auditor = await startAuditor({ url: broker.url, topics: ['chaos/#', 'chaos-refused/#', 'chaos-forbidden/#'], extract: extractReadingNumber });
    // libfaketime is preloaded only into a device whose clock the schedule moves: a crash elsewhere
    // can then never be the preload's doing.
    const clocks = MODES.map((mode, i) =>
      o.libfaketime !== undefined && plan.events.some((e) => e.kind === 'clock-jump' && e.device === i) ? new DeviceClock(o.libfaketime, join(root, `clock-${mode}`)) : undefined,
    );
    for (const [i, mode] of MODES.entries()) {
      const disk = DeviceDisk.create(join(root, `disk-${mode}`), o.diskMb);
      disks.push(disk);
      devices.push(makeDevice(o, mode, { broker: proxy.url, root, disk, clock: clocks[i], log }));
    }
    log(`seed ${o.seed}: ${plan.events.length} faults in ${o.durationMs / 1000} s, ${o.rate} readings/s per device`);
    for (const e of plan.events) lines.push(`  planned ${describeEvent(e, devices.map((d) => d.spec.clientId))}`);
    await Promise.all(devices.map((d) => d.start()));
    const hooks = devices.some((d) => d.hooks);
    const events = hooks ? plan : { ...plan, events: plan.events.filter((e) => e.kind !== 'worker-crash') };

    const player = new FaultPlayer({ broker, proxy, devices, disks, clocks, log });
    faultsBegan = performance.now();
    await player.play(events);
    await player.stop();
    const stoppedAt = performance.now();
    const bounds = devices.map((d) => livenessBoundMs(d.backlog, o.rate, o.timeoutMs));
    log(`  faults stopped; backlogs ${devices.map((d) => `${d.spec.mode} ${d.backlog}`).join(', ')}; drain bounds ${bounds.map((b) => `${Math.round(b / 1000)} s`).join(', ')}`);
    await sleep(CALM_MS);
    const drainedIn = await Promise.all(
      devices.map(async (d, i) => ((await d.drain(stoppedAt + bounds[i]!)) ? Math.round(performance.now() - stoppedAt) : undefined)),
    );

    // A wedged device's cache tells which undelivered readings are stuck rather than gone.
    const leftovers = await Promise.all(devices.map((d, i) => (drainedIn[i] === undefined ? d.inspect() : undefined)));
    leftovers.forEach((left, i) => {
      for (const seq of left?.deadLetters ?? []) devices[i]!.life?.deadLetters.add(seq);
    });

    // Every accepted reading on an allowed topic, except what a wedged device still holds: no use waiting for those.
    const expected = Object.fromEntries(
      devices.map((d, i) => [d.spec.clientId, d.lives.flatMap((l) => l.accepted.filter((a) => a.poison === undefined && leftovers[i]?.cached.has(a.seq) !== true).map((a) => a.n))]),
    );
    await auditor.waitFor(expected, AUDIT_WAIT_MS);
    await sleep(SETTLE_MS);

    const verdicts = devices.map((d, i) =>
      judge({
        mode: d.spec.mode,
        lives: d.lives,
        arrivals: auditor!.arrivals(d.spec.clientId),
        rate: o.rate,
        timeoutMs: o.timeoutMs,
        highWater: o.highWater,
        rssBoundMb: o.rssBoundMb,
        drainedInMs: drainedIn[i],
        livenessBoundMs: bounds[i]!,
        leftover: leftovers[i],
      }),
    );
    const failures = verdicts.flatMap((v) => v.failures);
    for (const [kind, n] of player.applied) if (n > 0) lines.push(`  applied ${kind} ×${n}`);
    for (const event of player.skipped) lines.push(`  skipped (the device did not acknowledge it) ${event}`);
    await auditor.close();
    // Mosquitto writes its log out when it exits.
    await broker.stop();
    const brokerLog = readLog(broker.dir);
    const trace = failures.length > 0 ? writeTrace({ seed: o.seed, repro: o.repro, t0: faultsBegan, lines, devices, verdicts, arrivals: devices.map((d) => auditor!.arrivals(d.spec.clientId)), brokerLog }) : undefined;
    return {
      seed: o.seed,
      plan,
      faults: player.total,
      applied: Object.fromEntries(player.applied),
      skipped: player.skipped,
      verdicts,
      failures,
      hooks,
      repro: o.repro,
      trace,
      elapsedMs: Math.round(performance.now() - started),
    };
  } finally {
    await Promise.all(devices.map((d) => d.abort()));
    await auditor?.close();
    await proxy?.close();
    await broker?.close();
    for (const disk of disks) disk.remove();
    rmSync(root, { recursive: true, force: true });
    cancelRootCleanup();
  }
}

/** A device of `mode` on its own disk, publishing through the link proxy at `broker`. */
function makeDevice(o: SeedOptions, mode: (typeof MODES)[number], at: { broker: string; root: string; disk: DeviceDisk; clock: DeviceClock | undefined; log: (line: string) => void }): ChaosDevice {
  const clientId = `chaos-${mode}-${o.seed}`;
  const env = {
    HF_BROKER: at.broker,
    HF_CLIENT_ID: clientId,
    HF_CACHE_DIR: join(at.disk.path, 'cache'),
    HF_DURABILITY: mode,
    HF_RATE: String(o.rate),
    HF_TIMEOUT_MS: String(o.timeoutMs),
    HF_HIGH_WATER: String(o.highWater),
    // Below the disk's size, as the README asks; the disk-full fault takes the rest.
    HF_MAX_CACHE_BYTES: String(Math.floor((o.diskMb << 20) / 4)),
    HOLDFAST_TEST_HOOKS: '1',
    ...at.clock?.env,
  };
  return new ChaosDevice({ clientId, mode, script: o.deviceScript, execArgv: o.execArgv, controlFile: join(at.root, `control-${mode}`), env }, at.log);
}

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'mosquitto.log'), 'utf8');
  } catch {
    return '';
  }
}
