import { readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSegment, INTAKE_SEGMENT } from '../intake-format.js';
import type { Rec } from './record.js';
import type { PublishBatch, QuarantineInfo, RetiredSegment } from '../protocol.js';
import type { CacheCipher } from './cipher.js';

export interface IntakeReplay {
  /** Readings the last run accepted but never committed, as batches (seqs consecutive within one). */
  batches: PublishBatch[];
  messages: number;
  /** Every segment found; each is deleted once what it holds is committed. */
  segments: RetiredSegment[];
  /** Segments damaged before their last frame, renamed aside (kept for forensics). */
  quarantined: QuarantineInfo[];
}

/**
 * Reads the intake log segments a previous run left behind (a crash, a SIGKILL, a power cut) and
 * returns the readings in them that never reached the cache: those with a seq above `appendedThrough`,
 * the highest seq the cache ever committed. They go through the sender like any fresh batch.
 *
 * A worker that replaces a dead one (same facade, still writing the log) reads only the segments named
 * before `bounds.before`, which the facade closed, and replays only up to `bounds.replayThrough`, the
 * last seq posted to the dead worker: the facade posts the later readings itself.
 */
export function readIntakeLog(dir: string, appendedThrough: number, cipher: CacheCipher | undefined, bounds?: { replayThrough: number; before: string | undefined }): IntakeReplay {
  const replay: IntakeReplay = { batches: [], messages: 0, segments: [], quarantined: [] };
  const replayThrough = bounds?.replayThrough ?? Infinity;
  const before = bounds?.before;
  const names = readdirSync(dir)
    .filter((name) => INTAKE_SEGMENT.test(name) && (before === undefined || name < before))
    .sort();
  const pending: Rec[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const segment = decodeSegment(readFileSync(path), cipher);
    let lastSeq = 0;
    for (const rec of segment.records) {
      lastSeq = Math.max(lastSeq, rec.seq);
      if (rec.seq > appendedThrough && rec.seq <= replayThrough) pending.push(rec);
    }
    if (segment.damage !== undefined && !segment.tornTail) {
      const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      renameSync(path, movedTo);
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
 * Deletes intake segments once every reading in them is safe elsewhere: committed to the cache
 * (journal) or delivered (spill, after a journal run's replay). `lowestVolatileSeq` is the lowest seq
 * a crash could still lose.
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
        unlinkSync(join(this.#dir, segment.name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue;
      }
      this.#segments.splice(i, 1);
    }
  }
}
