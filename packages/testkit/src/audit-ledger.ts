import type { Reading } from './extract.js';

/*
 * Pure bookkeeping of received readings: duplicates, order, and what is missing.
 * No MQTT here, so the arithmetic can be tested on its own.
 */

export interface DeviceReport {
  received: number;
  unique: number;
  duplicates: number;
  outOfOrder: number;
  lost: number;
  /** The first 100 missing seqs, ascending. */
  missing: number[];
}

export interface AuditReport {
  received: number;
  unique: number;
  duplicates: number;
  outOfOrder: number;
  lost: number;
  devices: Record<string, DeviceReport>;
}

export type Expected = Map<string, Set<number>>;

const MISSING_SHOWN = 100;
/**
 * Seqs may jump (a device restart starts a new epoch), so gaps are only meaningful within
 * one epoch: seq = epoch * 2^32 + counter, counters starting at 1.
 */
const EPOCH = 2 ** 32;

class DeviceLedger {
  readonly arrivals: number[] = [];
  readonly seen = new Set<number>();
  highest = -Infinity;
  duplicates = 0;
  outOfOrder = 0;

  record(seq: number): boolean {
    this.arrivals.push(seq);
    if (this.seen.has(seq)) {
      this.duplicates++;
      return false;
    }
    this.seen.add(seq);
    if (seq < this.highest) this.outOfOrder++;
    else this.highest = seq;
    return true;
  }

  /** Gaps in 1..max counter of each epoch seen. O(seen + shown), however large the counters. */
  gaps(): { lost: number; missing: number[] } {
    const perEpoch = new Map<number, { max: number; inRange: number }>();
    for (const seq of this.seen) {
      if (!Number.isSafeInteger(seq) || seq < 0) continue;
      const epoch = Math.floor(seq / EPOCH);
      const counter = seq % EPOCH;
      const e = perEpoch.get(epoch) ?? { max: 0, inRange: 0 };
      if (counter >= 1) e.inRange++;
      if (counter > e.max) e.max = counter;
      perEpoch.set(epoch, e);
    }
    let lost = 0;
    const missing: number[] = [];
    for (const epoch of [...perEpoch.keys()].sort((a, b) => a - b)) {
      const e = perEpoch.get(epoch)!;
      const gap = e.max - e.inRange;
      lost += gap;
      // Scan only until this epoch's gaps are all listed or enough are shown.
      let found = 0;
      for (let c = 1; c <= e.max && found < gap && missing.length < MISSING_SHOWN; c++) {
        const seq = epoch * EPOCH + c;
        if (!this.seen.has(seq)) {
          missing.push(seq);
          found++;
        }
      }
    }
    return { lost, missing };
  }

  against(expected: Set<number>): { lost: number; missing: number[] } {
    const missing: number[] = [];
    for (const seq of expected) if (!this.seen.has(seq)) missing.push(seq);
    missing.sort((a, b) => a - b);
    return { lost: missing.length, missing: missing.slice(0, MISSING_SHOWN) };
  }
}

export function toExpected(expected: Record<string, Iterable<number>>): Expected {
  const map: Expected = new Map();
  for (const [device, seqs] of Object.entries(expected)) map.set(device, new Set(seqs));
  return map;
}

export class AuditLedger {
  private readonly devices = new Map<string, DeviceLedger>();
  received = 0;
  unique = 0;
  duplicates = 0;
  outOfOrder = 0;

  /** Count one reading; true when its seq is new for its device. */
  record(reading: Reading): boolean {
    let device = this.devices.get(reading.device);
    if (device === undefined) {
      device = new DeviceLedger();
      this.devices.set(reading.device, device);
    }
    this.received++;
    const outOfOrderBefore = device.outOfOrder;
    const isNew = device.record(reading.seq);
    if (isNew) this.unique++;
    else this.duplicates++;
    this.outOfOrder += device.outOfOrder - outOfOrderBefore;
    return isNew;
  }

  has(device: string, seq: number): boolean {
    return this.devices.get(device)?.seen.has(seq) ?? false;
  }

  arrivals(device: string): number[] {
    return [...(this.devices.get(device)?.arrivals ?? [])];
  }

  /** With `expected`: lost = expected − received. Without: gaps within epochs. */
  report(expected?: Expected): AuditReport {
    const out: AuditReport = { received: 0, unique: 0, duplicates: 0, outOfOrder: 0, lost: 0, devices: {} };
    const names = new Set([...this.devices.keys(), ...(expected?.keys() ?? [])]);
    for (const name of [...names].sort()) {
      const device = this.devices.get(name) ?? new DeviceLedger();
      const want = expected?.get(name);
      const { lost, missing } = expected === undefined ? device.gaps() : want === undefined ? { lost: 0, missing: [] } : device.against(want);
      const report: DeviceReport = {
        received: device.arrivals.length,
        unique: device.seen.size,
        duplicates: device.duplicates,
        outOfOrder: device.outOfOrder,
        lost,
        missing,
      };
      // defineProperty: a device called "__proto__" must be a key, not a prototype change.
      Object.defineProperty(out.devices, name, { value: report, enumerable: true, writable: true, configurable: true });
      out.received += report.received;
      out.unique += report.unique;
      out.duplicates += report.duplicates;
      out.outOfOrder += report.outOfOrder;
      out.lost += report.lost;
    }
    return out;
  }
}
