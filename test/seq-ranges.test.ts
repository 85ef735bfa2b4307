/**
 * SeqRanges: how the facade names readings it lost (a worker crash, a stuck close()) by seq. Property
 * tests against a plain set of seqs, and the cap stats() keeps on lost ranges.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SeqRanges } from '../packages/holdfast/dist/seq-ranges.js';

/** Ascending runs of seqs, as the facade hands them out: each run starts above the last. */
const runs = fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })), { maxLength: 30 });

function build(gapsAndLengths: Array<[number, number]>): { ranges: SeqRanges; seqs: number[] } {
  const ranges = new SeqRanges();
  const seqs: number[] = [];
  let next = 1;
  for (const [gap, length] of gapsAndLengths) {
    const first = next + gap;
    ranges.add(first, first + length);
    for (let s = first; s <= first + length; s++) seqs.push(s);
    next = first + length + 1;
  }
  return { ranges, seqs };
}

const expand = (ranges: readonly (readonly [number, number])[]): number[] => ranges.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));

describe('SeqRanges', () => {
  it('holds exactly the seqs added, as ascending disjoint ranges with no two adjacent', () => {
    fc.assert(
      fc.property(runs, (r) => {
        const { ranges, seqs } = build(r);
        assert.deepEqual(expand(ranges.ranges), seqs);
        ranges.ranges.forEach(([a, b], i) => {
          assert.ok(a <= b);
          if (i > 0) assert.ok(a > ranges.ranges[i - 1]![1] + 1, 'adjacent ranges are merged');
        });
      }),
    );
  });

  it('from(seq) counts and names the seqs from seq on; dropBelow(seq) forgets the rest', () => {
    fc.assert(
      fc.property(runs, fc.integer({ min: 0, max: 200 }), (r, cut) => {
        const { ranges, seqs } = build(r);
        const kept = seqs.filter((s) => s >= cut);
        const lost = ranges.from(cut);
        assert.equal(lost.count, kept.length);
        assert.deepEqual(expand(lost.ranges), kept);
        ranges.dropBelow(cut);
        assert.deepEqual(expand(ranges.ranges), kept);
      }),
    );
  });

  it('keepNewest(n) keeps the newest n ranges (stats() keeps 64 of the lost ones; the count stays exact elsewhere)', () => {
    const ranges = new SeqRanges();
    for (let i = 0; i < 100; i++) ranges.add(i * 10, i * 10 + 2);
    ranges.keepNewest(64);
    assert.equal(ranges.ranges.length, 64);
    assert.deepEqual(ranges.ranges[0], [360, 362]);
    assert.deepEqual(ranges.ranges.at(-1), [990, 992]);
    ranges.keepNewest(64);
    assert.equal(ranges.ranges.length, 64, 'a no-op below the cap');
  });
});
