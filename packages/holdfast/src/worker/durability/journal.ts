import type { CacheWriter } from '../cache-writer.js';
import type { Rec } from '../record.js';
import type { DurabilityPolicy } from './policy.js';

/**
 * 'journal': every reading is committed to the cache before it is sent (the facade's intake log holds
 * it from publish() until then), and the in-flight packet is always persisted, so a crash loses
 * nothing accepted. The records also stay queued in memory, so DIRECT sends without reading the cache.
 */
export class JournalPolicy implements DurabilityPolicy {
  readonly mode = 'journal';
  readonly queuedAreCached = true;
  readonly persistsInDirect = true;
  readonly flushSpillsOffline = false;

  admit(recs: Rec[], writer: CacheWriter): void {
    writer.append(recs);
  }

  /** Committed, and not being evicted by a transaction still running. */
  canSend(rec: Rec, writer: CacheWriter): boolean {
    return rec.seq < writer.lowestVolatileSeq && !writer.isEvicting(rec.seq);
  }

  /** Everything queued is in the cache already (or waiting there for disk space). */
  toSpill(): Rec[] {
    return [];
  }

  lowestVolatile(writer: CacheWriter): number {
    return writer.lowestVolatileSeq;
  }
}
