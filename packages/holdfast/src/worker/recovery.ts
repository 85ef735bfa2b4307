import { EPOCH_SPAN, MAX_EPOCH, type PublishBatch } from '../protocol.js';
import type { Cache } from './cache.js';
import { publishIdFor } from './message-ids.js';
import { pubrelEntry, type OutgoingEntry } from './outgoing-store.js';
import type { Progress } from './progress-file.js';

/** At most this many PUBRELs for exchanges a power cut may have left at the broker (see below). */
const MAX_ORPHAN_PUBRELS = 64;

export interface RecoveredInFlight {
  /** Packets MQTT.js resends on connect, before anything new. */
  entries: OutgoingEntry[];
  /** Those a format-2 cache kept in its outgoing table (removed from it once they end). */
  legacy: number[];
  /** Persisted packets that could not be read (reported; their readings are sent again from the cache). */
  unreadable: Array<{ messageId: number; seqs: number[]; reason: string }>;
}

export interface RecoveryInput {
  progress: Progress;
  cache: Cache;
  /** What the intake log replays (journal mode). */
  replayed: readonly PublishBatch[];
  /** This run's epoch. */
  epoch: number;
  /** Journal mode: readings may have gone out before they were synced (see orphanPubrels). */
  journal: boolean;
}

/**
 * What the last run may have left in flight, to be finished before anything new is sent:
 * - the PUBREL the progress file names: the broker may still wait for it (or answer 0x92);
 * - packets a format-2 cache kept in its outgoing table, resent with their own ids;
 * - in journal mode, PUBRELs for readings a power cut took before their sync (orphanPubrels).
 */
export function recoverInFlight(input: RecoveryInput): RecoveredInFlight {
  const entries: OutgoingEntry[] = [];
  const ids = new Set<number>();
  const add = (entry: OutgoingEntry): void => {
    if (ids.has(entry.messageId)) return;
    ids.add(entry.messageId);
    entries.push(entry);
  };
  const legacyTable = input.cache.outgoing.list();
  for (const entry of legacyTable.entries) add(entry);
  const { pubrel } = input.progress;
  if (pubrel) add(pubrelEntry(pubrel.messageId, []));
  if (input.journal) for (const seq of orphanCandidates(input)) add(pubrelEntry(publishIdFor(seq), []));
  return { entries, legacy: legacyTable.entries.map((e) => e.messageId), unreadable: legacyTable.unreadable };
}

/**
 * In journal mode a reading goes out before the intake log's batched sync, so a power cut can take a
 * reading the broker already holds, waiting for a PUBREL that will never come (MQTT 5 method B, as
 * Mosquitto does). Its packet id would then swallow a later reading that derives the same id. It was
 * the exchange after the last recorded one: the first seq after the floor, or the first seq of a later
 * run's epoch. Each such seq that is gone from the disk gets a PUBREL: the broker releases the reading
 * it holds (it was accepted, and arrives once), or answers 0x92 when it holds none. A seq still on the
 * disk is resent as a PUBLISH instead, which the broker de-duplicates.
 */
function orphanCandidates({ progress, cache, replayed, epoch }: RecoveryInput): number[] {
  if (progress.floor === 0) return [];
  const present = (seq: number): boolean => cache.records.has(seq) || replayed.some((b) => seq >= b.firstSeq && seq < b.firstSeq + b.topics.length);
  const candidates = [progress.floor + 1];
  const floorEpoch = Math.floor(progress.floor / EPOCH_SPAN);
  // Replacement workers past the last epoch reserve epochs no seq is ever handed out in.
  for (let e = Math.max(floorEpoch + 1, epoch - MAX_ORPHAN_PUBRELS); e < Math.min(epoch, MAX_EPOCH + 1); e++) candidates.push(e * EPOCH_SPAN + 1);
  return candidates.filter((seq) => !present(seq));
}
