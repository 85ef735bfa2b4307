import { Packr } from 'msgpackr';
import { isSealed, type CacheCipher } from './cipher.js';

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

// Records are stored as compact arrays; the seq is the LMDB key, so it is not repeated in the value.
const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeRecord(rec: Rec, cipher?: CacheCipher): Buffer {
  const plain = packr.pack([rec.topic, rec.payload, rec.priority, rec.flags, rec.ts]);
  return cipher ? cipher.seal(plain) : plain;
}

/** Decodes a record; a sealed one needs the cipher (a plain one, written before a key was set, does not). */
export function decodeRecord(seq: number, bytes: Uint8Array, cipher?: CacheCipher): Rec {
  if (isSealed(bytes)) {
    if (!cipher) throw new Error(`cache record ${seq} is encrypted and no cacheKey was given`);
    bytes = cipher.open(bytes);
  }
  const value: unknown = packr.unpack(bytes);
  if (!Array.isArray(value) || value.length !== 5) throw new Error(`cache record ${seq} is malformed`);
  const [topic, payload, priority, flags, ts] = value as [unknown, unknown, unknown, unknown, unknown];
  if (typeof topic !== 'string' || (typeof payload !== 'string' && !(payload instanceof Uint8Array))) {
    throw new Error(`cache record ${seq} is malformed`);
  }
  return { seq, topic, payload, priority: Number(priority), flags: Number(flags), ts: Number(ts), size: recordSize(topic, payload) };
}

/** Packs any value (an outgoing packet, a dead letter's topic and payload), sealed when a cipher is set. */
export function sealValue(value: unknown, cipher: CacheCipher): Buffer {
  return cipher.seal(packr.pack(value));
}

export function openValue(sealed: Uint8Array, cipher: CacheCipher | undefined): unknown {
  if (!cipher) throw new Error('this cache entry is encrypted and no cacheKey was given');
  return packr.unpack(cipher.open(sealed));
}
