import type { ResolvedOptions } from '../options.js';
import type { Cache, UnreadableRecord } from './cache.js';
import type { CacheWriter } from './cache-writer.js';
import { Exchange } from './exchange.js';

/** What the drain sends next. */
export type DrainStep =
  | { kind: 'send'; exchange: Exchange; asBulk: boolean }
  /** Records that cannot be decoded: dead-letter them, then read again. */
  | { kind: 'unreadable'; unreadable: UnreadableRecord[] }
  | { kind: 'empty' };

/**
 * The oldest pending reading, wherever it waits: in the cache, or in memory waiting for disk space if
 * that is older. A bulk never reaches past a reading still waiting for space, so order holds across
 * the two. Call only when no write that adds or evicts records is pending (CacheWriter.reshaping).
 */
export function nextToDrain(cache: Cache, writer: CacheWriter, bulk: ResolvedOptions['bulk']): DrainStep {
  const { recs, unreadable } = cache.readOldest(bulk ? bulk.maxMessages : 1, bulk ? bulk.maxBytes : Number.MAX_SAFE_INTEGER, writer.unremovedSeqs);
  if (unreadable.length > 0) return { kind: 'unreadable', unreadable };
  const waiting = writer.overflowHead;
  if (waiting && (recs.length === 0 || waiting.seq < recs[0]!.seq)) {
    writer.takeOverflowHead();
    return { kind: 'send', exchange: new Exchange([waiting.seq], [waiting], false), asBulk: false };
  }
  if (recs.length === 0) return { kind: 'empty' };
  const sendable = waiting ? recs.filter((r) => r.seq < waiting.seq) : recs;
  return { kind: 'send', exchange: new Exchange(sendable.map((r) => r.seq), sendable, true), asBulk: bulk !== false };
}
