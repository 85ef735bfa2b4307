/**
 * The intake log's on-disk format (journal mode). publish() appends one frame per reading before it
 * returns, so a crash of the process cannot lose a reading publish() accepted; the worker later commits
 * the same readings to LMDB and deletes the segment.
 *
 * Frame: u32 body length, u32 FNV-1a checksum of the body, body. The body is the seq (f64) and the
 * record exactly as the cache stores it (record.ts: sealed with the cacheKey when one is set).
 * A segment is never written after a failed write, so a damaged frame can only be its last one.
 */
import { decodeRecord, type Rec } from './worker/record.js';
import type { CacheCipher } from './worker/cipher.js';

export const INTAKE_SEGMENT = /^intake-(\d{10})-(\d{8})\.log$/;
export const FRAME_HEADER_BYTES = 8;
/** A frame longer than this is damage, not a reading (payloads are capped far below it). */
const MAX_FRAME_BYTES = 512 * 1024 * 1024;

export function segmentName(epoch: number, index: number): string {
  return `intake-${String(epoch).padStart(10, '0')}-${String(index).padStart(8, '0')}.log`;
}

/** The seq (f64 LE) at the start of a frame's body, before the record. */
export const SEQ_BYTES = 8;

/** 32-bit FNV-1a: cheap in JS, and enough to tell a torn or zero-filled tail from a whole frame. */
export function checksum(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash >>> 0;
}

export interface DecodedSegment {
  records: Rec[];
  /** Why decoding stopped before the end of the file, or undefined when every byte was read. */
  damage: string | undefined;
  /** The damage is a torn last frame (a write cut short by the power): expected, not corruption. */
  tornTail: boolean;
}

/** Reads every whole frame of a segment, in order; stops at the first damaged one. */
export function decodeSegment(bytes: Buffer, cipher?: CacheCipher): DecodedSegment {
  const records: Rec[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const remaining = bytes.length - offset;
    if (remaining < FRAME_HEADER_BYTES) return { records, damage: `${remaining} stray bytes at offset ${offset}`, tornTail: true };
    const length = bytes.readUInt32LE(offset);
    const sum = bytes.readUInt32LE(offset + 4);
    const start = offset + FRAME_HEADER_BYTES;
    if (length === 0 || length > MAX_FRAME_BYTES) return { records, damage: `bad frame length ${length} at offset ${offset}`, tornTail: onlyZeros(bytes, offset) };
    if (start + length > bytes.length) return { records, damage: `frame at offset ${offset} is cut short`, tornTail: true };
    const last = start + length === bytes.length;
    if (checksum(bytes, start, start + length) !== sum) return { records, damage: `checksum mismatch at offset ${offset}`, tornTail: last };
    try {
      records.push(decodeFrameBody(bytes.subarray(start, start + length), cipher));
    } catch (err) {
      return { records, damage: `frame at offset ${offset}: ${(err as Error).message}`, tornTail: false };
    }
    offset = start + length;
  }
  return { records, damage: undefined, tornTail: false };
}

function decodeFrameBody(body: Buffer, cipher?: CacheCipher): Rec {
  if (body.length <= SEQ_BYTES) throw new Error('not an intake record');
  return decodeRecord(body.readDoubleLE(0), body.subarray(SEQ_BYTES), cipher);
}

function onlyZeros(bytes: Buffer, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
