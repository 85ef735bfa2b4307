/**
 * Plays a seed's schedule against the real pieces: the link proxy, the broker, and each device's
 * process, disk and clock. The tracks run side by side; within a track an event that runs late
 * pushes the next one back. stop() ends every fault still active, so the devices can catch up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Broker } from '../broker-types.js';
import type { LinkProxy, PacketFault } from '../link-proxy.js';
import type { ChaosDevice } from './devices.js';
import type { DeviceClock } from './clock.js';
import type { DeviceDisk } from './disk.js';
import { describeEvent, type ChaosEvent, type FaultKind, type SeedPlan } from './schedule.js';

export interface FaultTargets {
  broker: Broker;
  proxy: LinkProxy;
  devices: readonly ChaosDevice[];
  disks: readonly DeviceDisk[];
  /** Undefined for a device run without libfaketime. */
  clocks: ReadonlyArray<DeviceClock | undefined>;
  log: (line: string) => void;
}

const TRACK_OF: Record<FaultKind, number> = {
  reset: 0, stall: 0, latency: 0, refuse: 0, 'broker-pause': 0, 'broker-restart': 0,
  'drop-ack': 1, 'dup-ack': 1, 'delay-ack': 1,
  kill: 2, 'worker-crash': 2, 'disk-full': 2, 'clock-jump': 2,
  'refuse-topic': 3, 'disconnect-topic': 3,
};

export class FaultPlayer {
  /** Events carried out, by kind. */
  readonly applied = new Map<FaultKind, number>();
  /** Events that could not be carried out (e.g. a command the device did not acknowledge). */
  readonly skipped: string[] = [];
  readonly #packetFaults: PacketFault[] = [];
  /** Background faults still active (a full disk), each with its early end. */
  readonly #releases = new Set<() => void>();
  #t0 = 0;

  constructor(private readonly t: FaultTargets) {}

  get total(): number {
    let n = 0;
    for (const count of this.applied.values()) n += count;
    return n;
  }

  /** Plays every track until its last event is done, then waits out the window. */
  async play(plan: SeedPlan): Promise<void> {
    this.#t0 = performance.now();
    const tracks: ChaosEvent[][] = [[], [], [], []];
    for (const e of plan.events) tracks[TRACK_OF[e.kind]]!.push(e);
    await Promise.all(tracks.map((events) => this.#track(events)));
    await sleep(Math.max(0, plan.durationMs - this.#elapsed()));
  }

  #elapsed(): number {
    return performance.now() - this.#t0;
  }

  async #track(events: readonly ChaosEvent[]): Promise<void> {
    for (const e of events) {
      await sleep(Math.max(0, e.atMs - this.#elapsed()));
      const names = this.t.devices.map((d) => d.spec.clientId);
      this.t.log(`  ${(this.#elapsed() / 1000).toFixed(1)}s ${describeEvent(e, names).replace(/^\S+ /, '')}`);
      if (await this.#apply(e)) this.applied.set(e.kind, (this.applied.get(e.kind) ?? 0) + 1);
      else this.skipped.push(describeEvent(e, names));
    }
  }

  async #apply(e: ChaosEvent): Promise<boolean> {
    const { proxy, broker } = this.t;
    switch (e.kind) {
      case 'reset':
        proxy.reset();
        return true;
      case 'stall':
        await proxy.stallFor(e.durationMs);
        return true;
      case 'latency':
        proxy.setLatency(e.oneWayMs);
        await sleep(e.durationMs);
        proxy.setLatency(0);
        return true;
      case 'refuse':
        await proxy.outage(e.durationMs);
        return true;
      case 'broker-pause':
        broker.pause();
        await sleep(e.durationMs);
        broker.resume();
        return true;
      case 'broker-restart':
        await broker.restart();
        return true;
      case 'drop-ack':
        this.#packetFaults.push(proxy.dropPackets(e.ack.direction, e.ack.type));
        return true;
      case 'dup-ack':
        this.#packetFaults.push(proxy.duplicatePackets(e.ack.direction, e.ack.type));
        return true;
      case 'delay-ack':
        this.#packetFaults.push(proxy.delayPackets(e.ack.direction, e.ack.type, e.delayMs));
        return true;
      case 'kill': {
        const device = this.t.devices[e.device]!;
        await device.kill();
        await sleep(e.offMs);
        await device.start();
        return true;
      }
      case 'worker-crash':
        return this.t.devices[e.device]!.command({ do: 'inject', kind: e.how });
      case 'disk-full':
        this.#diskFull(this.t.disks[e.device]!, e.durationMs);
        return true;
      case 'clock-jump': {
        const clock = this.t.clocks[e.device];
        clock?.set(e.offsetSec);
        return clock !== undefined;
      }
      case 'refuse-topic':
        return this.t.devices[e.device]!.command({ do: 'poison', topic: 'refused' });
      case 'disconnect-topic':
        return this.t.devices[e.device]!.command({ do: 'poison', topic: 'forbidden' });
    }
  }

  /** Fills the disk now and frees it after `ms` (or at stop()), while the track goes on. */
  #diskFull(disk: DeviceDisk, ms: number): void {
    const free = disk.fill();
    let timer: NodeJS.Timeout | undefined;
    const release = (): void => {
      clearTimeout(timer);
      this.#releases.delete(release);
      free();
    };
    timer = setTimeout(release, ms);
    this.#releases.add(release);
  }

  /**
   * Faults stop: the link carries everything again, the broker runs, disks are freed and clocks are
   * real again. Per-packet faults not yet triggered are disarmed; delayed packets still go out.
   */
  async stop(): Promise<void> {
    const { proxy, broker } = this.t;
    for (const f of this.#packetFaults) f.cancel();
    proxy.stall(false);
    proxy.setLatency(0);
    await proxy.refuse(false);
    broker.resume();
    await broker.start();
    for (const release of [...this.#releases]) release();
    for (const clock of this.t.clocks) clock?.set(0);
    await Promise.all(this.t.devices.map((d) => d.settled()));
  }
}
