import type { ResolvedOptions } from '../options.js';
import type { FromWorker } from '../protocol.js';
import type { Cache } from './cache.js';
import type { CacheWriter } from './cache-writer.js';
import type { DeliveryLedger } from './delivery-ledger.js';
import { Exchange } from './exchange.js';
import type { Rec } from './record.js';
import type { UnreadableRecord } from './records-table.js';
import type { SenderStats } from './sender-stats.js';

/** What the drain does next. */
export type DrainStep =
  | { kind: 'send'; exchange: Exchange; asBulk: boolean }
  /** Records that cannot be decoded: dead-letter them, then read again. */
  | { kind: 'unreadable'; unreadable: UnreadableRecord[] }
  /** The next reading is still on its way into the cache (or being evicted): read again once it lands. */
  | { kind: 'wait' }
  /** Nothing left in the cache, nothing on its way into it. */
  | { kind: 'empty' };

/**
 * The oldest pending reading, wherever it waits: requeued dead letters first (they keep their old,
 * lower seqs), then the cache after the delivered floor, or memory waiting for disk space if that is
 * older. Nothing is sent past a reading still on its way into the cache (writer.lowestVolatileSeq), or
 * that a transaction still running is evicting, so order holds and nothing evicted is delivered.
 */
export function nextToDrain(cache: Cache, writer: CacheWriter, ledger: DeliveryLedger, bulk: ResolvedOptions['bulk']): DrainStep {
  const maxMessages = bulk ? bulk.maxMessages : 1;
  const maxBytes = bulk ? bulk.maxBytes : Number.MAX_SAFE_INTEGER;
  const requeued = ledger.requeuedPending;
  if (requeued.length > 0) {
    const leaving = writer.leavingSeqs;
    const wanted = requeued.slice(0, maxMessages).filter((seq) => !leaving?.has(seq));
    const read = cache.records.readSeqsOrUnreadable(wanted);
    if (read.unreadable.length > 0) return { kind: 'unreadable', unreadable: read.unreadable };
    // Gone meanwhile (evicted): nothing left to hold the floor for.
    ledger.forgetRequeued(wanted.filter((seq) => !read.recs.some((r) => r.seq === seq)));
    if (read.recs.length > 0) return { kind: 'send', exchange: new Exchange(read.recs.map((r) => r.seq), read.recs, true), asBulk: bulk !== false };
  }
  const { recs, unreadable } = cache.records.readOldest(maxMessages, maxBytes, writer.leavingSeqs, ledger.deliveredFloor);
  if (unreadable.length > 0) return { kind: 'unreadable', unreadable };
  const waiting = writer.overflowHead;
  if (waiting && (recs.length === 0 || waiting.seq < recs[0]!.seq)) {
    writer.takeOverflowHead();
    return { kind: 'send', exchange: new Exchange([waiting.seq], [waiting], false), asBulk: false };
  }
  const sendable = sendablePrefix(recs, writer);
  if (sendable.length > 0) return { kind: 'send', exchange: new Exchange(sendable.map((r) => r.seq), sendable, true), asBulk: bulk !== false };
  return recs.length > 0 || writer.appending ? { kind: 'wait' } : { kind: 'empty' };
}

/** The records before the first that is not safe to send yet: order is never broken to send more. */
function sendablePrefix(recs: readonly Rec[], writer: CacheWriter): Rec[] {
  const volatile = writer.lowestVolatileSeq;
  let n = 0;
  while (n < recs.length && recs[n]!.seq < volatile && !writer.isEvicting(recs[n]!.seq)) n++;
  return n === recs.length ? (recs as Rec[]) : recs.slice(0, n);
}

/** Records the drain could not decode go to the dead letters, each with its reason; the drain skips them meanwhile. */
export function deadLetterUnreadable(
  unreadable: readonly UnreadableRecord[],
  { cache, writer, ledger, stats, post }: { cache: Cache; writer: CacheWriter; ledger: DeliveryLedger; stats: SenderStats; post: (msg: FromWorker) => void },
): void {
  stats.deadLettered(unreadable.length);
  for (const u of unreadable) post({ type: 'event', name: 'dead-letter', data: { seqs: [u.seq], reason: `unreadable cache record: ${u.reason}` } });
  ledger.forgetRequeued(unreadable.map((u) => u.seq));
  writer.removing(
    unreadable.map((u) => u.seq),
    cache.deadLetterUnreadable(unreadable),
  );
}
