/**
 * The intake log's segment decoder against damage, on segments the real IntakeLog writes: a torn last
 * write is expected (dropped quietly); damage anywhere else costs only the frames it touches (the decoder
 * reads on from the next whole frame) and is reported; and no damage ever makes up a reading.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IntakeLog } from '../packages/holdfast/dist/intake-log.js';
import { checksum, decodeSegment, saltOf } from '../packages/holdfast/dist/intake-format.js';
import { tempDir } from './helpers.js';

const READINGS = 200;

/** A segment of READINGS readings, as publish() writes them in journal mode; and where each frame starts. */
function writtenSegment(): { bytes: Buffer; offsets: number[]; salt: number } {
  const dir = tempDir('intake-format');
  try {
    const log = new IntakeLog(dir.path, 1, undefined, (err) => assert.fail(err));
    for (let seq = 1; seq <= READINGS; seq++) assert.ok(log.append(seq, 'sensors/format', JSON.stringify({ n: seq, v: seq / 7 }), 5, 0, Date.now()));
    log.close();
    const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.log'));
    const bytes = readFileSync(join(dir.path, name!));
    const offsets: number[] = [];
    for (let offset = 0; offset < bytes.length; offset += 8 + bytes.readUInt32LE(offset)) offsets.push(offset);
    assert.equal(offsets.length, READINGS);
    const salt = saltOf(name!);
    assert.ok(salt !== undefined, `the segment's name carries its salt: ${name}`);
    return { bytes, offsets, salt };
  } finally {
    dir.remove();
  }
}


const all = Array.from({ length: READINGS }, (_, i) => i + 1);
/** The frame holding byte `at`, by its seq. */
const frameAt = (offsets: number[], at: number): number => offsets.filter((o) => o <= at).length;

describe('intake segment decoder', () => {
  const { bytes, offsets, salt } = writtenSegment();
  const decode = (b: Buffer): ReturnType<typeof decodeSegment> => decodeSegment(b, salt);

  it('reads a whole segment, every reading in order', () => {
    const decoded = decode(bytes);
    assert.deepEqual(decoded.records.map((r) => r.seq), all);
    assert.equal(decoded.damage, undefined);
  });

  it('a torn last write (cut short, or a zero-filled end) is dropped quietly', () => {
    const cut = decode(bytes.subarray(0, bytes.length - 5));
    assert.deepEqual(cut.records.map((r) => r.seq), all.slice(0, -1));
    assert.equal(cut.tornTail, true);
    const zeros = decode(Buffer.concat([bytes, Buffer.alloc(4096)]));
    assert.deepEqual(zeros.records.map((r) => r.seq), all);
    assert.equal(zeros.tornTail, true);
  });

  it('a page the power left unwritten in the middle costs only the frames in it, and is reported', () => {
    const damaged = Buffer.from(bytes);
    const page = 4096;
    damaged.fill(0, page, 2 * page);
    const decoded = decode(damaged);
    const end = (seq: number): number => offsets[seq] ?? damaged.length;
    const lost = new Set(all.filter((seq) => offsets[seq - 1]! < 2 * page && end(seq) > page));
    assert.ok(lost.size > 0 && lost.size < READINGS / 2);
    assert.deepEqual(decoded.records.map((r) => r.seq), all.filter((seq) => !lost.has(seq)));
    assert.equal(decoded.tornTail, false);
    assert.match(decoded.damage ?? '', /read on from offset \d+/);
  });

  it('any one flipped byte loses at most the frame it is in, never makes one up, and is reported unless in the last frame', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, mask) => {
        const damaged = Buffer.from(bytes);
        damaged[at] = damaged[at]! ^ mask;
        const decoded = decode(damaged);
        const seqs = decoded.records.map((r) => r.seq);
        const hit = frameAt(offsets, at);
        assert.deepEqual(seqs, all.filter((seq) => seq !== hit), `byte ${at} ^ ${mask} (frame ${hit})`);
        if (hit < READINGS) assert.ok(decoded.damage !== undefined && !decoded.tornTail, `reported: ${decoded.damage}`);
      }),
      { numRuns: 300 },
    );
  });

  /** Frames 1..100, a header whose length runs past the end (it alone would read as a torn write), `filler`, frames 101..200. */
  const withDamage = (filler: Buffer): Buffer => {
    const tail = bytes.subarray(offsets[100]!);
    const header = Buffer.alloc(8);
    header.writeUInt32LE(filler.length + tail.length + 1000, 0);
    return Buffer.concat([bytes.subarray(0, offsets[100]!), header, filler, tail]);
  };

  it('random bytes after damage (an encrypted or binary payload) do not stop the search for the next whole frame', () => {
    // 4 MiB of random bytes holds about 4,000 lengths that fit; their checksums alone would cost gigabytes.
    const decoded = decode(withDamage(randomBytes(4 * 1024 * 1024)));
    assert.deepEqual(decoded.records.map((r) => r.seq), all);
    assert.equal(decoded.tornTail, false);
    assert.match(decoded.damage ?? '', /cut short; read on from offset/);
  });

  it('a search that runs out of its budget is reported as damage, never as a torn tail', () => {
    // Crafted look-alikes: a fitting length and the very next seq, each a 1 MiB checksum to rule out.
    const lookAlike = Buffer.alloc(16);
    lookAlike.writeUInt32LE(1024 * 1024, 0);
    lookAlike.writeDoubleLE(101, 8);
    const decoded = decode(withDamage(Buffer.concat([Buffer.concat(Array.from({ length: 128 }, () => lookAlike)), Buffer.alloc(2 * 1024 * 1024)])));
    assert.deepEqual(decoded.records.map((r) => r.seq), all.slice(0, 100));
    assert.equal(decoded.tornTail, false, 'readings may follow: the segment must be reported and kept');
    assert.match(decoded.damage ?? '', /stopped at its budget/);
  });

  it('never makes up a reading, whatever the damage: what it reads is a subsequence of what was written', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 40 }), (writes) => {
        const damaged = Buffer.from(bytes);
        for (const [at, value] of writes) damaged[at] = value;
        const seqs = decode(damaged).records.map((r) => r.seq);
        assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
        assert.ok(seqs.every((seq, i) => Number.isInteger(seq) && seq >= 1 && seq <= READINGS && (i === 0 || seq > seqs[i - 1]!)));
      }),
      { numRuns: 200 },
    );
  });
});

/** One frame as IntakeLog writes it, for a payload to carry inside its own bytes. */
function oneFrame(seq: number, topic: string, payload: string): Buffer {
  const dir = tempDir('intake-format-frame');
  try {
    const log = new IntakeLog(dir.path, 1, undefined, (err) => assert.fail(err));
    assert.ok(log.append(seq, topic, payload, 5, 0, Date.now()));
    log.close();
    const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.log'));
    return readFileSync(join(dir.path, name!));
  } finally {
    dir.remove();
  }
}

/** A segment of readings 1..count whose last one is a binary payload carrying `inside` (then padding). */
function segmentEndingWith(count: number, inside: Buffer): { bytes: Buffer; salt: number } {
  const dir = tempDir('intake-format-embed');
  try {
    const log = new IntakeLog(dir.path, 1, undefined, (err) => assert.fail(err));
    for (let seq = 1; seq < count; seq++) assert.ok(log.append(seq, 'sensors/format', JSON.stringify({ n: seq }), 5, 0, Date.now()));
    assert.ok(log.append(count, 'sensors/blob', new Uint8Array(Buffer.concat([inside, Buffer.alloc(32, 0x41)])), 5, 0, Date.now()));
    log.close();
    const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.log'));
    return { bytes: readFileSync(join(dir.path, name!)), salt: saltOf(name!)! };
  } finally {
    dir.remove();
  }
}

/** The same segment as written before salts: every frame's checksum without one. */
function unsalted(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  for (let offset = 0; offset + 8 <= out.length; ) {
    const length = out.readUInt32LE(offset);
    if (offset + 8 + length > out.length) break;
    out.writeUInt32LE(checksum(out, offset + 8, offset + 8 + length), offset + 4);
    offset += 8 + length;
  }
  return out;
}

describe('intake segment decoder against frames inside binary payloads', () => {
  // The search after damage checks a frame with the segment's salt, which a payload's author cannot know.
  it('a torn last write whose payload carries a whole frame, even with the seq its own frame has, reads as a torn tail; nothing is made up', () => {
    for (const seq of [10, NaN, 2 ** 60, 3, -1, 1.5]) {
      const { bytes, salt } = segmentEndingWith(10, oneFrame(seq, 'forged', 'made up'));
      const decoded = decodeSegment(bytes.subarray(0, bytes.length - 1), salt);
      assert.deepEqual(decoded.records.map((r) => r.topic), Array.from({ length: 9 }, () => 'sensors/format'), `an embedded frame with seq ${seq}`);
      assert.equal(decoded.tornTail, true, `seq ${seq}: ${decoded.damage}`);
    }
  });

  it('a segment written before salts (a name without one) is read with the plain checksum; the salt is what a salted one is checked with', () => {
    const { bytes, salt } = segmentEndingWith(10, Buffer.alloc(16));
    assert.deepEqual(decodeSegment(unsalted(bytes), undefined).records.map((r) => r.seq), all.slice(0, 10));
    assert.deepEqual(decodeSegment(bytes, salt).records.map((r) => r.seq), all.slice(0, 10));
    assert.deepEqual(decodeSegment(bytes, salt ^ 1).records, [], 'another salt matches no frame');
  });

  it('without a salt, a frame a payload carries cannot go back, nor hold a seq no run hands out (NaN, past the last epoch)', () => {
    for (const seq of [NaN, 2 ** 60, 3, -1, 1.5]) {
      const { bytes } = segmentEndingWith(10, unsalted(oneFrame(seq, 'forged', 'made up')));
      const decoded = decodeSegment(unsalted(bytes).subarray(0, bytes.length - 1), undefined);
      assert.deepEqual(decoded.records.map((r) => r.seq), all.slice(0, 9), `an embedded frame with seq ${seq}`);
    }
  });
});

/**
 * 300 readings of `epoch`, the one at `blobAt` a binary payload of packed { u32, u32, f64 ms timestamp }
 * samples: a common telemetry layout, a count (or sensor id, or millivolts) that reads as a length which
 * fits, then an f64 epoch-ms timestamp, a safe integer above any seq of the first 410 epochs.
 */
function samplesSegment(epoch: number, blobAt: number): { bytes: Buffer; salt: number; seqs: number[] } {
  const samples = 2048;
  const blob = Buffer.alloc(samples * 16);
  const now = Date.now();
  for (let i = 0; i < samples; i++) {
    blob.writeUInt32LE(40_000 + i, i * 16);
    blob.writeDoubleLE(now + i * 10, i * 16 + 8);
  }
  const first = epoch * 2 ** 32 + 1;
  const seqs = Array.from({ length: 300 }, (_, i) => first + i);
  const dir = tempDir('intake-format-samples');
  try {
    const log = new IntakeLog(dir.path, epoch, undefined, (err) => assert.fail(err));
    for (const [i, seq] of seqs.entries()) {
      const payload = i === blobAt ? new Uint8Array(blob) : JSON.stringify({ n: i, pad: 'x'.repeat(300) });
      assert.ok(log.append(seq, 'sensors/samples', payload, 5, 0, now));
    }
    log.close();
    const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.log'));
    return { bytes: readFileSync(join(dir.path, name!)), salt: saltOf(name!)!, seqs };
  } finally {
    dir.remove();
  }
}

describe('intake segment decoder against binary payloads that hold timestamps', () => {
  it('damage in a frame whose payload is packed { u32, u32, f64 ms timestamp } samples costs only that frame', () => {
    const { bytes, salt, seqs } = samplesSegment(5, 10);
    let offset = 0;
    for (let n = 0; n < 10; n++) offset += 8 + bytes.readUInt32LE(offset);
    // One flipped bit in the samples frame's checksum: a bit rot, or a sector the power cut tore.
    bytes[offset + 4] = bytes[offset + 4]! ^ 1;
    const decoded = decodeSegment(bytes, salt);
    assert.deepEqual(decoded.records.map((r) => r.seq), seqs.filter((_, i) => i !== 10), `decoded: ${decoded.damage}`);
    assert.equal(decoded.tornTail, false);
  });

  it('damage in a segment\'s first frame, such a samples payload, costs only that frame (nothing read yet to expect a seq from)', () => {
    // Epoch 410 is the one the epoch-ms timestamps of 2026 fall in.
    for (const epoch of [5, 410]) {
      const { bytes, salt, seqs } = samplesSegment(epoch, 0);
      bytes[4] = bytes[4]! ^ 1;
      const decoded = decodeSegment(bytes, salt);
      assert.deepEqual(decoded.records.map((r) => r.seq), seqs.slice(1), `epoch ${epoch}: ${decoded.damage}`);
    }
  });
});

describe('intake segment decoder: where the search may expect the next seq', () => {
  it('damage from the first frame on and further on costs only the frames it touches, whatever the payloads', () => {
    // Text, random bytes and packed { u32, f64 } samples; the first damage always hits the segment's
    // first frame (nothing read yet), the others anywhere: a good frame between two damages is read too.
    const payload = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.array(fc.tuple(fc.nat(), fc.double({ noNaN: true })), { minLength: 1, maxLength: 100 }).map((samples) => {
        const b = Buffer.alloc(samples.length * 12);
        samples.forEach(([u, d], i) => (b.writeUInt32LE(u, i * 12), b.writeDoubleLE(d, i * 12 + 4)));
        return new Uint8Array(b);
      }),
    );
    const damage = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 600 }), fc.boolean());
    fc.assert(
      fc.property(fc.array(payload, { minLength: 2, maxLength: 40 }), fc.constantFrom(1, 5, 410), damage, fc.array(damage, { maxLength: 2 }), (payloads, epoch, head, rest) => {
        const first = epoch * 2 ** 32 + 1 + 12_345;
        const dir = tempDir('intake-format-multi');
        let bytes: Buffer;
        let salt: number;
        try {
          const log = new IntakeLog(dir.path, epoch, undefined, (err) => assert.fail(err));
          payloads.forEach((p, i) => assert.ok(log.append(first + i, 'sensors/multi', p, 5, 0, Date.now())));
          log.close();
          const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.log'));
          bytes = readFileSync(join(dir.path, name!));
          salt = saltOf(name!)!;
        } finally {
          dir.remove();
        }
        const offsets: number[] = [];
        for (let offset = 0; offset < bytes.length; offset += 8 + bytes.readUInt32LE(offset)) offsets.push(offset);
        const damaged = Buffer.from(bytes);
        for (const [i, [at0, length, zero]] of [head, ...rest].entries()) {
          const at = i === 0 ? at0 % offsets[1]! : at0 % bytes.length;
          for (let b = at; b < Math.min(bytes.length, at + length); b++) damaged[b] = zero ? 0 : bytes[b]! ^ 0x5a;
        }
        // A frame is touched when a byte of it changed (zeros over zeros change nothing).
        const touched = new Set(offsets.flatMap((o, k) => (damaged.subarray(o, offsets[k + 1] ?? bytes.length).equals(bytes.subarray(o, offsets[k + 1] ?? bytes.length)) ? [] : [k])));
        const decoded = decodeSegment(damaged, salt);
        const expected = payloads.map((_, k) => first + k).filter((_, k) => !touched.has(k));
        assert.deepEqual(decoded.records.map((r) => r.seq), expected, `touched ${[...touched].join(',')}: ${decoded.damage}`);
      }),
      { numRuns: 1000 },
    );
  });


  /** A segment of `seqs`, one short text reading each, and where each frame starts. */
  function segmentOf(seqs: number[]): { bytes: Buffer; salt: number; offsets: number[] } {
    const dir = tempDir('intake-format-seqs');
    try {
      const log = new IntakeLog(dir.path, 7, undefined, (err) => assert.fail(err));
      for (const seq of seqs) assert.ok(log.append(seq, 'sensors/seqs', JSON.stringify({ seq }), 5, 0, Date.now()));
      log.close();
      const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.log'));
      const bytes = readFileSync(join(dir.path, name!));
      const offsets: number[] = [];
      for (let offset = 0; offset < bytes.length; offset += 8 + bytes.readUInt32LE(offset)) offsets.push(offset);
      return { bytes, salt: saltOf(name!)!, offsets };
    } finally {
      dir.remove();
    }
  }

  it('damage in the first frame of a segment that starts deep into an epoch costs only that frame', () => {
    const seqs = Array.from({ length: 20 }, (_, i) => 7 * 2 ** 32 + 100_000 + i);
    const { bytes, salt } = segmentOf(seqs);
    bytes[4] = bytes[4]! ^ 1;
    assert.deepEqual(decodeSegment(bytes, salt).records.map((r) => r.seq), seqs.slice(1));
  });

  it('damage across an epoch change (the counter starts again at 1) costs only the damaged frames', () => {
    const seqs = [...Array.from({ length: 10 }, (_, i) => 7 * 2 ** 32 + 2 ** 32 - 10 + i), ...Array.from({ length: 10 }, (_, i) => 9 * 2 ** 32 + 1 + i)];
    const { bytes, salt, offsets } = segmentOf(seqs);
    bytes.fill(0, offsets[8]! + 4, offsets[12]!);
    assert.deepEqual(decodeSegment(bytes, salt).records.map((r) => r.seq), [...seqs.slice(0, 8), ...seqs.slice(12)]);
  });
});
