import type { Reading } from './extract.js';

/** seq = epoch·2^32 + counter; counters restart at 1 in each epoch (one per publisher start). */
const EPOCH_SPAN = 2 ** 32;

export type AuditEvent =
  | { event: 'gap'; device: string; epoch: number; from: number; to: number; count: number }
  | { event: 'late'; device: string; seq: number }
  | { event: 'duplicate'; device: string; seq: number }
  | { event: 'epoch'; device: string; epoch: number; first: number };

export interface DeviceSummary {
  received: number;
  unique: number;
  duplicates: number;
  outOfOrder: number;
  lost: number;
  epochs: number;
  lastSeq: number;
  /** The first missing seqs (up to 20), ascending, for a closer look. */
  missing: number[];
}

export interface AuditSummary {
  received: number;
  unique: number;
  duplicates: number;
  outOfOrder: number;
  lost: number;
  unidentified: number;
  devices: Record<string, DeviceSummary>;
}

const MISSING_SHOWN = 20;

/** One epoch of one device: the highest counter and the counters still missing below it, as ranges. */
class EpochTrack {
  highest: number;
  /** Disjoint, ascending [from, to] ranges. */
  readonly missing: Array<[number, number]> = [];

  constructor(highest: number) {
    this.highest = highest;
  }

  get lost(): number {
    return this.missing.reduce((n, [from, to]) => n + to - from + 1, 0);
  }

  /** Removes `c` from the missing ranges; false when it was not missing (a duplicate). */
  fill(c: number): boolean {
    const i = this.missing.findIndex(([from, to]) => c >= from && c <= to);
    if (i < 0) return false;
    const [from, to] = this.missing[i]!;
    const parts: Array<[number, number]> = [];
    if (from < c) parts.push([from, c - 1]);
    if (c < to) parts.push([c + 1, to]);
    this.missing.splice(i, 1, ...parts);
    return true;
  }
}

class DeviceTrack {
  readonly epochs = new Map<number, EpochTrack>();
  received = 0;
  unique = 0;
  duplicates = 0;
  outOfOrder = 0;
  lastSeq = 0;
  maxEpoch = -1;
}

/**
 * Per-device seq tracking with memory proportional to the gaps, not the readings, so a field audit
 * can run for days. The first epoch seen starts where the audit joined the stream (nothing before it
 * is counted as lost); a later epoch is counted from 1, because a restarted publisher starts there.
 */
export class SeqTracker {
  readonly #devices = new Map<string, DeviceTrack>();
  unidentified = 0;

  record({ device, seq }: Reading, emit: (e: AuditEvent) => void): void {
    let d = this.#devices.get(device);
    if (d === undefined) {
      d = new DeviceTrack();
      this.#devices.set(device, d);
    }
    d.received++;
    d.lastSeq = seq;
    const epoch = Math.floor(seq / EPOCH_SPAN);
    const c = seq % EPOCH_SPAN;
    let e = d.epochs.get(epoch);
    if (e === undefined) {
      const joinedMidStream = d.epochs.size === 0 || epoch < d.maxEpoch;
      e = new EpochTrack(joinedMidStream ? c - 1 : 0);
      d.epochs.set(epoch, e);
      if (d.epochs.size > 1) emit({ event: 'epoch', device, epoch, first: seq });
    }
    if (epoch < d.maxEpoch) d.outOfOrder++;
    d.maxEpoch = Math.max(d.maxEpoch, epoch);
    if (c > e.highest) {
      if (c > e.highest + 1) {
        const from = e.highest + 1;
        e.missing.push([from, c - 1]);
        emit({ event: 'gap', device, epoch, from: epoch * EPOCH_SPAN + from, to: epoch * EPOCH_SPAN + c - 1, count: c - from });
      }
      e.highest = c;
      d.unique++;
    } else if (e.fill(c)) {
      d.unique++;
      d.outOfOrder++;
      emit({ event: 'late', device, seq });
    } else {
      d.duplicates++;
      emit({ event: 'duplicate', device, seq });
    }
  }

  summary(): AuditSummary {
    const out: AuditSummary = { received: 0, unique: 0, duplicates: 0, outOfOrder: 0, lost: 0, unidentified: this.unidentified, devices: {} };
    for (const name of [...this.#devices.keys()].sort()) {
      const d = this.#devices.get(name)!;
      let lost = 0;
      const missing: number[] = [];
      for (const [epoch, e] of [...d.epochs].sort((a, b) => a[0] - b[0])) {
        lost += e.lost;
        for (const [from, to] of e.missing) {
          for (let c = from; c <= to && missing.length < MISSING_SHOWN; c++) missing.push(epoch * EPOCH_SPAN + c);
        }
      }
      const s: DeviceSummary = { received: d.received, unique: d.unique, duplicates: d.duplicates, outOfOrder: d.outOfOrder, lost, epochs: d.epochs.size, lastSeq: d.lastSeq, missing };
      // defineProperty: a device named "__proto__" must stay a plain key.
      Object.defineProperty(out.devices, name, { value: s, enumerable: true, writable: true, configurable: true });
      out.received += s.received;
      out.unique += s.unique;
      out.duplicates += s.duplicates;
      out.outOfOrder += s.outOfOrder;
      out.lost += s.lost;
    }
    return out;
  }
}
