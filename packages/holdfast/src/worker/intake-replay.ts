import { readdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSegment, INTAKE_SEGMENT, saltOf } from '../intake-format.js';
import type { Rec } from './record.js';
import { epochOf, type PublishBatch, type QuarantineInfo, type RetiredSegment } from '../protocol.js';
import type { CacheCipher } from './cipher.js';
import { isDone, type Progress } from './progress-file.js';

export interface IntakeReplay {
  /** Readings the last run accepted but never committed, as batches (seqs consecutive within one). */
  batches: PublishBatch[];
  messages: number;
  /** Every segment found; each is deleted once what it holds is committed. */
  segments: RetiredSegment[];
  /**
   * Segments damaged before their last frame. Each is renamed aside (kept for forensics) only once the
   * readings before the damage are committed: until then a crash must find it in place to replay them.
   */
  quarantined: QuarantineInfo[];
  /** The highest seq epoch in the log (segment names and readable seqs): a new run's epoch is above it. */
  highestEpoch: number;
}

/** What tells a reading in the log that it needs no replay. */
export interface ReplayBounds {
  /** The highest seq the cache ever committed: every seq at or below it reached the cache. */
  appendedThrough: number;
  /** Delivery progress: everything at or below the floor is delivered, and so is the PUBREL's exchange. */
  progress: Progress;
  /** Readings in the dead letters (refused, or poison): not sent again by a replay. */
  deadLettered: (seq: number) => boolean;
  /**
   * Readings in the cache: appendedThrough is a watermark held below a reading still on its way, so a
   * reading above it may be cached already. Appended again, it would be counted twice in the totals.
   */
  cached: (seq: number) => boolean;
  /**
   * A worker that replaces a dead one (same facade, still writing the log) replays only up to the
   * last seq posted to the dead worker (the facade posts the later readings itself)...
   */
  replayThrough?: number;
  /** ...and reads only the segments named before this one, which the facade closed. */
  before?: string | undefined;
}

/**
 * Reads the intake log segments a previous run left behind (a crash, a SIGKILL, a power cut) and
 * returns the readings in them that are neither in the cache nor delivered. They go through the sender
 * like any fresh batch.
 */
export function readIntakeLog(dir: string, bounds: ReplayBounds, cipher: CacheCipher | undefined): IntakeReplay {
  const replayThrough = bounds.replayThrough ?? Infinity;
  const done = (seq: number): boolean => seq <= bounds.appendedThrough || seq > replayThrough || isDone(bounds.progress, seq) || bounds.deadLettered(seq) || bounds.cached(seq);
  const { before } = bounds;
  const replay: IntakeReplay = { batches: [], messages: 0, segments: [], quarantined: [], highestEpoch: 0 };
  const names = readdirSync(dir)
    .filter((name) => INTAKE_SEGMENT.test(name) && (before === undefined || name < before))
    .sort();
  const pending: Rec[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const segment = decodeSegment(readFileSync(path), saltOf(name), cipher);
    let lastSeq = 0;
    for (const rec of segment.records) {
      lastSeq = Math.max(lastSeq, rec.seq);
      if (!done(rec.seq)) pending.push(rec);
    }
    replay.highestEpoch = Math.max(replay.highestEpoch, Number(INTAKE_SEGMENT.exec(name)![1]), epochOf(lastSeq));
    if (segment.damage !== undefined && !segment.tornTail) {
      // Named by the segment's last write, not the time of this read: a restart that reads it again
      // before it is set aside reports the same name.
      const movedTo = `${path}.corrupt-${statSync(path).mtime.toISOString().replace(/[:.]/g, '-')}`;
      replay.segments.push({ name, lastSeq, setAsideAs: movedTo });
      replay.quarantined.push({ movedTo, reason: `intake log damaged: ${segment.damage}` });
    } else {
      replay.segments.push({ name, lastSeq });
    }
  }
  pending.sort((a, b) => a.seq - b.seq);
  replay.batches = toBatches(pending);
  replay.messages = pending.length;
  return replay;
}

function toBatches(recs: readonly Rec[]): PublishBatch[] {
  const batches: PublishBatch[] = [];
  let batch: PublishBatch | undefined;
  for (const rec of recs) {
    if (!batch || batch.firstSeq + batch.topics.length !== rec.seq) {
      batch = { type: 'publish', firstSeq: rec.seq, topics: [], payloads: [], priorities: [], flags: [], timestamps: [] };
      batches.push(batch);
    }
    batch.topics.push(rec.topic);
    batch.payloads.push(rec.payload);
    batch.priorities.push(rec.priority);
    batch.flags.push(rec.flags);
    batch.timestamps.push(rec.ts);
  }
  return batches;
}

/**
 * Deletes intake segments (sets a damaged one aside) once every reading in them is safe elsewhere:
 * committed to the cache (journal) or delivered (spill, after a journal run's replay).
 * `lowestVolatileSeq` is the lowest seq a crash could still lose.
 */
export class SegmentSweeper {
  readonly #dir: string;
  readonly #segments: RetiredSegment[] = [];

  constructor(dir: string) {
    this.#dir = dir;
  }

  add(segments: readonly RetiredSegment[]): void {
    this.#segments.push(...segments);
  }

  sweep(lowestVolatileSeq: number): void {
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const segment = this.#segments[i]!;
      if (segment.lastSeq >= lowestVolatileSeq) continue;
      try {
        if (segment.setAsideAs === undefined) unlinkSync(join(this.#dir, segment.name));
        else renameSync(join(this.#dir, segment.name), segment.setAsideAs);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue;
      }
      this.#segments.splice(i, 1);
    }
  }
}
