import type { PublishBatch } from '../protocol.js';
import type { Cache } from './cache.js';
import type { CacheCipher } from './cipher.js';
import type { IntakeReplay } from './intake-replay.js';
import { decodeRecord, recordSize, storedSize, type Rec } from './record.js';

/** A record the dead workers kept crashing on, named by the supervisor (restart-policy.ts). */
export interface Poison {
  seq: number;
  reason: string;
}

/**
 * Moves a record the previous workers kept crashing on to the dead letters, before this worker drains.
 * It is in the cache, or (journal mode, sent from memory) only in the intake log this worker replays:
 * then it leaves the replay. A cached record that cannot even be decoded is kept as its stored bytes
 * (topic '') for forensics. A packet a format-2 cache kept in flight carrying it is dropped, so MQTT.js
 * does not resend it. Resolves with whether the record was found.
 */
export async function deadLetterPoison(cache: Cache, cipher: CacheCipher | undefined, intake: IntakeReplay, poison: Poison): Promise<boolean> {
  const { seq, reason } = poison;
  // Out of the replay either way: a record both cached and in the log must not be sent from the log.
  const replayed = takeFromReplay(intake, seq);
  const raw = cache.records.rawRecord(seq);
  if (!raw) {
    if (!replayed) return false;
    await cache.write(() => cache.dead.putInTxn([replayed], reason));
    return true;
  }
  let rec: Rec;
  try {
    rec = { ...decodeRecord(seq, raw.stored, cipher), size: sizeOf(raw.stored) };
  } catch (err) {
    await cache.deadLetterUnreadable([{ seq, priority: raw.priority, stored: Buffer.from(raw.stored), reason: `${(err as Error).message}; ${reason}` }]);
    return true;
  }
  const packets = cache.outgoing.list().entries.filter((entry) => entry.seqs.includes(seq));
  await cache.remove([rec], () => {
    cache.dead.putInTxn([rec], reason);
    cache.requeued.removeInTxn([seq]);
    for (const entry of packets) cache.outgoing.removeInTxn(entry.messageId);
  });
  return true;
}

/** Takes the reading `seq` out of the replay's batches (splitting its batch), as a record. */
function takeFromReplay(intake: IntakeReplay, seq: number): Rec | undefined {
  const at = intake.batches.findIndex((b) => seq >= b.firstSeq && seq < b.firstSeq + b.topics.length);
  if (at < 0) return undefined;
  const batch = intake.batches[at]!;
  const i = seq - batch.firstSeq;
  const topic = batch.topics[i]!;
  const payload = batch.payloads[i]!;
  const rec: Rec = { seq, topic, payload, priority: batch.priorities[i]!, flags: batch.flags[i]!, ts: batch.timestamps[i]!, size: recordSize(topic, payload) };
  const part = (from: number, to: number): PublishBatch => ({
    type: 'publish',
    firstSeq: batch.firstSeq + from,
    topics: batch.topics.slice(from, to),
    payloads: batch.payloads.slice(from, to),
    priorities: batch.priorities.slice(from, to),
    flags: batch.flags.slice(from, to),
    timestamps: batch.timestamps.slice(from, to),
  });
  const rest = [part(0, i), part(i + 1, batch.topics.length)].filter((b) => b.topics.length > 0);
  intake.batches.splice(at, 1, ...rest);
  intake.messages--;
  return rec;
}

/** The accounting size the cache counted this record with (its header), or its length if that is damaged. */
function sizeOf(bytes: Uint8Array): number {
  try {
    return storedSize(bytes);
  } catch {
    return bytes.length;
  }
}
