/**
 * The intake log's on-disk format (journal mode). publish() appends one frame per reading before it
 * returns, so a crash of the process cannot lose a reading publish() accepted; the worker later commits
 * the same readings to LMDB and deletes the segment.
 *
 * Frame: u32 body length, u32 FNV-1a checksum of the segment's salt and the body, body. The body is the
 * seq (f64) and the record exactly as the cache stores it (record.ts: sealed with the cacheKey when one
 * is set). A segment is never written after a failed write, so a frame cut short can only be its last
 * one; damage elsewhere (a flipped bit, a page a power cut left unwritten) costs only the frames it
 * touches.
 *
 * The salt is random per segment and kept in its name (a damaged page cannot take it): the search for
 * the next whole frame after damage then cannot take a frame a binary payload carries inside its bytes
 * for a reading, since the payload's author cannot know the salt. Segments named without one (written
 * before it existed) are read with the plain checksum.
 */
import { decodeRecord, type Rec } from './worker/record.js';
import type { CacheCipher } from './worker/cipher.js';
import { EPOCH_SPAN, epochOf, MAX_EPOCH } from './protocol.js';

export const INTAKE_SEGMENT = /^intake-(\d{10})-(\d{8})(?:-([0-9a-f]{8}))?\.log$/;
export const FRAME_HEADER_BYTES = 8;
/** A frame longer than this is damage, not a reading (payloads are capped far below it). */
const MAX_FRAME_BYTES = 512 * 1024 * 1024;

/** What every name of segment `index` of `epoch` starts with; it sorts after every earlier segment's name. */
export function segmentPrefix(epoch: number, index: number): string {
  return `intake-${String(epoch).padStart(10, '0')}-${String(index).padStart(8, '0')}`;
}

export function segmentName(epoch: number, index: number, salt: number): string {
  return `${segmentPrefix(epoch, index)}-${salt.toString(16).padStart(8, '0')}.log`;
}

/** The salt a segment's name carries (undefined: a segment from before salts, or not a segment). */
export function saltOf(name: string): number | undefined {
  const hex = INTAKE_SEGMENT.exec(name)?.[3];
  return hex === undefined ? undefined : Number.parseInt(hex, 16);
}

/** The seq (f64 LE) at the start of a frame's body, before the record. */
export const SEQ_BYTES = 8;

/**
 * 32-bit FNV-1a: cheap in JS, and enough to tell a torn or zero-filled tail from a whole frame. With a
 * salt, its four bytes go first.
 */
export function checksum(bytes: Uint8Array, start: number, end: number, salt?: number): number {
  let hash = 0x811c9dc5;
  if (salt !== undefined) for (let shift = 0; shift < 32; shift += 8) hash = Math.imul(hash ^ ((salt >>> shift) & 0xff), 0x01000193);
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

/**
 * Reads every whole frame of a segment, in order. At damage it looks for the next whole frame further on
 * (findNextFrame): when there is one, the damage was in the middle (a flipped bit, a page the power cut
 * left unwritten) and reading goes on from there, so only the damaged frame is lost; when there is none,
 * a frame cut short or a zero-filled end is a torn last write, expected after a power cut.
 */
export function decodeSegment(bytes: Buffer, salt: number | undefined, cipher?: CacheCipher): DecodedSegment {
  const records: Rec[] = [];
  let damage: string | undefined;
  let offset = 0;
  const search: Search = { afterSeq: 0, afterEnd: 0, budget: RESYNC_BUDGET_BYTES, salt };
  while (offset < bytes.length) {
    const frame = readFrame(bytes, offset, search, cipher);
    if (frame.rec) {
      records.push(frame.rec);
      search.afterSeq = frame.rec.seq;
      search.afterEnd = frame.next;
      offset = frame.next;
      continue;
    }
    let next = findNextFrame(bytes, offset + 1, search, cipher, true);
    if (search.afterEnd === 0) {
      // Nothing read yet: a whole frame whose next one is damaged too does not chain on (chainsOn()).
      next = next === undefined ? findNextFrame(bytes, offset + 1, search, cipher, false) : (findFrameBefore(bytes, offset + 1, next, search, cipher) ?? next);
    }
    if (next === undefined) {
      // A search cut off by its budget proves nothing about what follows: report it, never a torn tail.
      const stopped = search.budget <= 0 ? `; the search for the next whole frame stopped at its budget at offset ${offset}` : '';
      if (damage !== undefined || stopped !== '') return { records, damage: `${damage ?? frame.damage}${stopped}`, tornTail: false };
      return { records, damage: frame.damage, tornTail: frame.tornIfLast };
    }
    damage ??= `${frame.damage}; read on from offset ${next}`;
    offset = next;
  }
  return { records, damage, tornTail: false };
}

type Frame = { rec: Rec; next: number } | { rec?: undefined; damage: string; tornIfLast: boolean };

/** A frame is a reading only with a seq above the one before it in the segment (the writer's order). */
function readFrame(bytes: Buffer, offset: number, { afterSeq, salt }: Search, cipher?: CacheCipher): Frame {
  const remaining = bytes.length - offset;
  if (remaining < FRAME_HEADER_BYTES) return { damage: `${remaining} stray bytes at offset ${offset}`, tornIfLast: true };
  const length = bytes.readUInt32LE(offset);
  const sum = bytes.readUInt32LE(offset + 4);
  const start = offset + FRAME_HEADER_BYTES;
  if (length === 0 || length > MAX_FRAME_BYTES) return { damage: `bad frame length ${length} at offset ${offset}`, tornIfLast: onlyZeros(bytes, offset) };
  if (start + length > bytes.length) return { damage: `frame at offset ${offset} is cut short`, tornIfLast: true };
  if (checksum(bytes, start, start + length, salt) !== sum) return { damage: `checksum mismatch at offset ${offset}`, tornIfLast: start + length === bytes.length };
  try {
    const rec = decodeFrameBody(bytes.subarray(start, start + length), cipher);
    if (!isSeqAfter(rec.seq, afterSeq)) return { damage: `frame at offset ${offset} holds seq ${rec.seq} after ${afterSeq}`, tornIfLast: false };
    return { rec, next: start + length };
  } catch (err) {
    return { damage: `frame at offset ${offset}: ${(err as Error).message}`, tornIfLast: false };
  }
}

/**
 * Checksummed bytes the searches for the next whole frame may spend in one segment (a segment is 4 MiB):
 * per segment, not per damage, or a payload that leads each search to a frame of its own could repeat it.
 */
const RESYNC_BUDGET_BYTES = 64 * 1024 * 1024;

interface Search {
  /** The seq of the last frame read: a frame found further on must hold a higher one. */
  afterSeq: number;
  /** Where that frame ends (0 before the first). */
  afterEnd: number;
  budget: number;
  salt: number | undefined;
}

/**
 * The writer's seqs rise within a segment and stay within the seq space: a frame a payload carries
 * inside its bytes cannot go back (replay or reorder a reading) nor claim a seq no run hands out
 * (NaN, or an epoch past MAX_EPOCH, which the next run's epoch would have to exceed).
 */
function isSeqAfter(seq: number, afterSeq: number): boolean {
  return Number.isSafeInteger(seq) && seq > afterSeq && epochOf(seq) <= MAX_EPOCH;
}

/**
 * The offset of the next whole frame at or after `from`: a length that fits, a matching checksum and a
 * body that decodes. Text payloads cannot fake a length (four bytes ≥ 0x20 exceed MAX_FRAME_BYTES), nor
 * random bytes a seq, so few offsets get as far as a checksum; the budget bounds a crafted payload's worst case.
 */
function findNextFrame(bytes: Buffer, from: number, search: Search, cipher: CacheCipher | undefined, chained: boolean): number | undefined {
  for (let offset = from; offset + FRAME_HEADER_BYTES < bytes.length && search.budget > 0; offset++) {
    const length = bytes.readUInt32LE(offset);
    const start = offset + FRAME_HEADER_BYTES;
    if (length <= SEQ_BYTES || length > MAX_FRAME_BYTES || start + length > bytes.length) continue;
    // The seq is in the clear: random bytes (an encrypted or binary payload) almost never hold one
    // that could follow the last one read, so few candidates cost a checksum.
    if (!couldFollow(bytes.readDoubleLE(start), offset, search) || (chained && !chainsOn(bytes, start + length, bytes.readDoubleLE(start), search))) continue;
    search.budget -= length;
    if (checksum(bytes, start, start + length, search.salt) !== bytes.readUInt32LE(offset + 4)) continue;
    if (readFrame(bytes, offset, search, cipher).rec) return offset;
  }
  return undefined;
}

/** A frame holds at least its header, its seq and a byte of record. */
const MIN_FRAME_BYTES = FRAME_HEADER_BYTES + SEQ_BYTES + 1;

/**
 * The writer's seqs are consecutive within a segment (a reading it could not write ends the segment and
 * its seq is given again), an epoch change restarting the counter at 1: after the frames that fit
 * between the last one read and `offset`, lost, the next holds one of as many seqs more. A number a
 * binary payload holds (an epoch-ms timestamp is a safe integer above most seqs) rarely does.
 */
function couldFollow(seq: number, offset: number, { afterSeq, afterEnd }: Search): boolean {
  if (!isSeqAfter(seq, afterSeq)) return false;
  // Nothing read yet: a segment starts anywhere in an epoch.
  if (afterEnd === 0) return true;
  return isWithinReach(afterSeq, seq, offset - afterEnd);
}

/** Whether `later` can be the seq of the next frame read after `earlier` with `gapBytes` of lost frames between them. */
function isWithinReach(earlier: number, later: number, gapBytes: number): boolean {
  const reach = Math.floor(gapBytes / MIN_FRAME_BYTES) + 1;
  return later - earlier <= reach || (epochOf(later) > epochOf(earlier) && later % EPOCH_SPAN <= reach);
}

/**
 * With nothing read yet, any rising seq could start the segment, so a number a binary payload holds (an
 * epoch-ms timestamp) would pass couldFollow() at every sample and the search could spend its budget
 * inside the damaged frame. The frame after a real one holds the next seq (or the segment ends, or a
 * torn write does): a payload's numbers rarely line up so. A whole frame whose next one is damaged too is
 * found by findFrameBefore(), or, when no frame further on chains on, by a search without this check.
 */
function chainsOn(bytes: Buffer, end: number, seq: number, { afterEnd }: Search): boolean {
  if (afterEnd !== 0 || end + FRAME_HEADER_BYTES + SEQ_BYTES > bytes.length) return true;
  const next = bytes.readDoubleLE(end + FRAME_HEADER_BYTES);
  return isSeqAfter(next, seq) && (next === seq + 1 || (epochOf(next) > epochOf(seq) && next % EPOCH_SPAN === 1));
}

/**
 * chainsOn() passes over a whole frame whose next one is damaged too. Once a frame that chains on is
 * found (its seq known), an earlier one can only hold one of the seqs just below it that the frames
 * between them could have held: the search that rules out the frames a payload carries once a frame is read.
 */
function findFrameBefore(bytes: Buffer, from: number, found: number, search: Search, cipher?: CacheCipher): number | undefined {
  const foundSeq = bytes.readDoubleLE(found + FRAME_HEADER_BYTES);
  for (let offset = from; offset + FRAME_HEADER_BYTES + MIN_FRAME_BYTES < found && search.budget > 0; offset++) {
    const length = bytes.readUInt32LE(offset);
    const start = offset + FRAME_HEADER_BYTES;
    if (length <= SEQ_BYTES || start + length > found) continue;
    const seq = bytes.readDoubleLE(start);
    if (!isSeqAfter(seq, 0) || seq >= foundSeq || !isWithinReach(seq, foundSeq, found - start - length)) continue;
    search.budget -= length;
    if (checksum(bytes, start, start + length, search.salt) !== bytes.readUInt32LE(offset + 4)) continue;
    if (readFrame(bytes, offset, search, cipher).rec) return offset;
  }
  return undefined;
}

function decodeFrameBody(body: Buffer, cipher?: CacheCipher): Rec {
  if (body.length <= SEQ_BYTES) throw new Error('not an intake record');
  return decodeRecord(body.readDoubleLE(0), body.subarray(SEQ_BYTES), cipher);
}

function onlyZeros(bytes: Buffer, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
