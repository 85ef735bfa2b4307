import { Packr } from 'msgpackr';
import { ErrorCodes, HoldfastError } from './errors.js';

/** One reading inside a bulk message, as unpackBulk() returns it. */
export interface BulkReading {
  topic: string;
  payload: Buffer;
  seq: number;
  /** Wall-clock ms at publish() on the device (informational: device clocks jump). */
  ts: number;
}

interface Packable {
  topic: string;
  payload: string | Uint8Array;
  seq: number;
  ts: number;
}

// Plain msgpack maps (no msgpackr record extension), so any msgpack decoder can read a bulk.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

/** Packs readings, oldest first, into one payload: a msgpack array of { topic, payload, seq, ts }. */
export function packBulk(readings: readonly Packable[]): Buffer {
  return packr.pack(readings.map((r) => ({ topic: r.topic, payload: r.payload, seq: r.seq, ts: r.ts })));
}

function invalid(reason: string): never {
  throw new HoldfastError(ErrorCodes.INVALID_BULK, `not a holdfast bulk payload: ${reason}`);
}

/**
 * Expands a bulk payload back into readings, in order. Validates everything: malformed bytes give a
 * HoldfastError(INVALID_BULK), never a crash or a hang.
 */
export function unpackBulk(payload: Uint8Array): BulkReading[] {
  if (!(payload instanceof Uint8Array)) invalid('expected a Buffer or Uint8Array');
  if (payload.byteLength === 0) invalid('empty payload');
  let value: unknown;
  try {
    value = packr.unpack(payload);
  } catch (err) {
    invalid(`undecodable msgpack (${(err as Error).message})`);
  }
  if (!Array.isArray(value)) invalid('the top level is not an array');
  const out: BulkReading[] = new Array<BulkReading>(value.length);
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== 'object' || item === null) invalid(`reading ${i} is not a map`);
    const { topic, payload: body, seq, ts } = item as Record<string, unknown>;
    if (typeof topic !== 'string' || topic.length === 0) invalid(`reading ${i} has no topic`);
    if (typeof body !== 'string' && !(body instanceof Uint8Array)) invalid(`reading ${i} has no payload`);
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) invalid(`reading ${i} has no valid seq`);
    if (typeof ts !== 'number' || !Number.isFinite(ts)) invalid(`reading ${i} has no valid ts`);
    const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    out[i] = { topic, payload: bytes, seq, ts };
  }
  return out;
}
