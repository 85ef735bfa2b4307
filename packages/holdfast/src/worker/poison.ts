import { FLAG_QOS2 } from '../protocol.js';
import type { Cache } from './cache.js';
import type { CacheCipher } from './cipher.js';
import { decodeRecord, storedSize, type Rec } from './record.js';

/**
 * Moves a record the previous workers kept crashing on to the dead letters, before this worker drains
 * (the supervisor asks for it after several crashes in a row at that seq). A record that cannot even be
 * decoded is kept as its stored bytes (topic '', the raw value as payload) for forensics. A persisted
 * in-flight packet carrying it is dropped, so MQTT.js does not resend it; its other readings, if it
 * was a bulk, are still cached and go out again. Resolves with whether the record was found.
 */
export async function deadLetterPoison(cache: Cache, cipher: CacheCipher | undefined, seq: number, reason: string): Promise<boolean> {
  const raw = cache.rawRecord(seq);
  if (!raw) return false;
  let rec: Rec;
  try {
    rec = { ...decodeRecord(seq, raw.bytes, cipher), size: sizeOf(raw.bytes) };
  } catch (err) {
    const bytes = Buffer.from(raw.bytes);
    rec = { seq, topic: '', payload: bytes, priority: raw.priority, flags: FLAG_QOS2, ts: 0, size: sizeOf(bytes) };
    reason = `${reason}; the record cannot be decoded (${(err as Error).message}), kept as its stored bytes`;
  }
  const packets = cache.listOutgoing().filter((entry) => entry.seqs.includes(seq));
  await cache.remove([rec], () => {
    cache.deadLetterInTxn([rec], reason);
    for (const entry of packets) cache.removeOutgoingInTxn(entry.messageId);
  });
  return true;
}

/** The accounting size the cache counted this record with (its header), or its length if that is damaged. */
function sizeOf(bytes: Buffer): number {
  try {
    return storedSize(bytes);
  } catch {
    return bytes.length;
  }
}
