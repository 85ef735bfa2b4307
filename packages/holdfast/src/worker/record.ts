import { Packr } from 'msgpackr';
import type { PublishBatch } from '../protocol.js';
import type { CacheCipher } from './cipher.js';

/** One accepted message inside the worker. */
export interface Rec {
  seq: number;
  topic: string;
  payload: string | Uint8Array;
  priority: number;
  flags: number;
  /** Wall-clock ms at publish(): informational only, never used for order or limits. */
  ts: number;
  /** Accounting size in bytes (topic + payload). */
  size: number;
}

export function recordSize(topic: string, payload: string | Uint8Array): number {
  return topic.length + (typeof payload === 'string' ? payload.length : payload.byteLength);
}

/** The records a publish batch from the facade carries, oldest first. */
export function recordsOf(batch: PublishBatch): Rec[] {
  const recs: Rec[] = new Array<Rec>(batch.topics.length);
  for (let i = 0; i < recs.length; i++) {
    const topic = batch.topics[i]!;
    const payload = batch.payloads[i]!;
    recs[i] = { seq: batch.firstSeq + i, topic, payload, priority: batch.priorities[i]!, flags: batch.flags[i]!, ts: batch.timestamps[i]!, size: recordSize(topic, payload) };
  }
  return recs;
}

/*
 * A record's value (its seq and priority are the key, see cache-layout.ts):
 *   format (1 byte) · size (u32 BE) · body, the body sealed with a cacheKey
 *   body = priority (1) · flags (1) · ts (f64 BE) · topic length (u32 BE) · topic (UTF-8) · payload kind (1) · payload
 * The size is outside the seal so eviction and recounts never decode (a ciphertext's length tells as
 * much). A hand-written layout: spilling 100,000 records is dominated by per-record costs.
 */
const FORMAT_PLAIN = 0x01;
const FORMAT_SEALED = 0x02;
const HEADER = 5;
const BODY_FIXED = 1 + 1 + 8 + 4 + 1;
const PAYLOAD_STRING = 0;
const PAYLOAD_BYTES = 1;
/** Values up to this size are encoded in one reused buffer; bigger ones get their own. */
const SCRATCH_MAX = 1 << 20;

/** Node's UTF-8 writer without Buffer#write's argument juggling (msgpackr uses it too). */
type Utf8Writer = Buffer & { utf8Write(text: string, offset: number): number };

let scratch = Buffer.allocUnsafe(64 * 1024) as Utf8Writer;
/** The topic whose bytes `scratch` holds (consecutive records nearly always share one). */
let scratchTopic: string | undefined;
let scratchTopicBytes = 0;

/**
 * Encodes a record. The result may be a view of a reused buffer, valid until the next call: pass it
 * straight to a synchronous LMDB write (which copies it).
 */
export function encodeRecord(rec: Rec, cipher?: CacheCipher): Buffer {
  const payloadMax = typeof rec.payload === 'string' ? rec.payload.length * 3 : rec.payload.byteLength;
  const need = HEADER + BODY_FIXED + rec.topic.length * 3 + payloadMax;
  if (need > scratch.length) {
    if (need > SCRATCH_MAX) return encodeInto(Buffer.allocUnsafe(need) as Utf8Writer, rec, cipher);
    scratch = Buffer.allocUnsafe(Math.min(SCRATCH_MAX, Math.max(need, scratch.length * 2))) as Utf8Writer;
    scratchTopic = undefined;
  }
  return encodeInto(scratch, rec, cipher);
}

function encodeInto(b: Utf8Writer, rec: Rec, cipher: CacheCipher | undefined): Buffer {
  let o = HEADER;
  b[o++] = rec.priority;
  b[o++] = rec.flags;
  o = b.writeDoubleBE(rec.ts, o);
  // The topic always sits at the same offset, and nothing else writes there: reuse its bytes.
  let topicBytes: number;
  if (b === scratch && rec.topic === scratchTopic) topicBytes = scratchTopicBytes;
  else {
    topicBytes = b.utf8Write(rec.topic, o + 4);
    if (b === scratch) [scratchTopic, scratchTopicBytes] = [rec.topic, topicBytes];
  }
  o = b.writeUInt32BE(topicBytes, o) + topicBytes;
  if (typeof rec.payload === 'string') {
    b[o++] = PAYLOAD_STRING;
    o += b.utf8Write(rec.payload, o);
  } else {
    b[o++] = PAYLOAD_BYTES;
    b.set(rec.payload, o);
    o += rec.payload.byteLength;
  }
  const size = Math.min(rec.size, 0xffffffff);
  if (!cipher) {
    b[0] = FORMAT_PLAIN;
    b.writeUInt32BE(size, 1);
    return b.subarray(0, o);
  }
  const sealed = cipher.seal(b.subarray(HEADER, o));
  const out = Buffer.allocUnsafe(HEADER + sealed.length);
  out[0] = FORMAT_SEALED;
  out.writeUInt32BE(size, 1);
  out.set(sealed, HEADER);
  return out;
}

/** The accounting size, read from the header without decoding. */
export function storedSize(bytes: Uint8Array): number {
  if (bytes.length < HEADER || (bytes[0] !== FORMAT_PLAIN && bytes[0] !== FORMAT_SEALED)) throw new Error('cache record is malformed');
  return ((bytes[1]! << 24) >>> 0) + ((bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!);
}

export function isSealedRecord(bytes: Uint8Array): boolean {
  return bytes[0] === FORMAT_SEALED;
}

/** Decodes a record; a sealed one needs the cipher (a plain one, written before a key was set, does not). */
export function decodeRecord(seq: number, bytes: Uint8Array, cipher?: CacheCipher): Rec {
  const format = bytes.length >= HEADER ? bytes[0] : undefined;
  let body: Buffer;
  if (format === FORMAT_SEALED) {
    if (!cipher) throw new Error(`cache record ${seq} is encrypted and no cacheKey was given`);
    body = cipher.open(bytes.subarray(HEADER));
  } else if (format === FORMAT_PLAIN) {
    body = Buffer.from(bytes.buffer, bytes.byteOffset + HEADER, bytes.byteLength - HEADER);
  } else {
    throw new Error(`cache record ${seq} is malformed`);
  }
  const malformed = (): Error => new Error(`cache record ${seq} is malformed`);
  if (body.length < BODY_FIXED) throw malformed();
  const priority = body[0]!;
  const flags = body[1]!;
  const ts = body.readDoubleBE(2);
  const topicEnd = 14 + body.readUInt32BE(10);
  if (topicEnd + 1 > body.length) throw malformed();
  const topic = body.toString('utf8', 14, topicEnd);
  const kind = body[topicEnd];
  let payload: string | Uint8Array;
  if (kind === PAYLOAD_STRING) payload = body.toString('utf8', topicEnd + 1);
  else if (kind === PAYLOAD_BYTES) payload = Buffer.from(body.subarray(topicEnd + 1));
  else throw malformed();
  return { seq, topic, payload, priority, flags, ts, size: recordSize(topic, payload) };
}

// Other values (outgoing packets, dead letters) are msgpack, sealed with a cacheKey.
const packr = new Packr({ useRecords: false, moreTypes: false });

/** Packs any value (an outgoing packet, a dead letter's topic and payload), sealed when a cipher is set. */
export function sealValue(value: unknown, cipher: CacheCipher): Buffer {
  return cipher.seal(packr.pack(value));
}

export function openValue(sealed: Uint8Array, cipher: CacheCipher | undefined): unknown {
  if (!cipher) throw new Error('this cache entry is encrypted and no cacheKey was given');
  return packr.unpack(cipher.open(sealed));
}
