/**
 * Bulk drain: the codec is fuzzed (malformed bytes give HoldfastError(INVALID_BULK), never a crash or a
 * hang; pack → unpack round-trips), and a client with bulk on delivers every reading exactly once and in
 * order through a link outage on a 100 ms RTT link, against real Mosquitto.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { ErrorCodes, HoldfastError, open, unpackBulk, type HoldfastClient } from 'holdfast';
import { startAuditor, startBroker, startLinkProxy, type AuditMessage, type Broker, type LinkProxy, type Reading } from '@holdfast/testkit';
// packBulk is the worker's half of the codec and not public API: the built module is imported by path.
import { packBulk } from '../packages/holdfast/dist/bulk.js';
import { extractReadingNumber, tempDir, waitUntil } from './helpers.js';

function expectBulkResultOrInvalid(bytes: Uint8Array): void {
  try {
    const readings = unpackBulk(bytes);
    assert.ok(Array.isArray(readings));
    for (const r of readings) {
      assert.equal(typeof r.topic, 'string');
      assert.ok(Buffer.isBuffer(r.payload));
      assert.ok(Number.isSafeInteger(r.seq) && r.seq > 0);
      assert.ok(Number.isFinite(r.ts));
    }
  } catch (err) {
    assert.ok(err instanceof HoldfastError, `expected a HoldfastError, got ${String(err)}`);
    assert.equal(err.code, ErrorCodes.INVALID_BULK);
  }
}

describe('unpackBulk', () => {
  it('turns arbitrary bytes into readings or HoldfastError(INVALID_BULK), never a crash', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), expectBulkResultOrInvalid), { numRuns: 5000 });
  });

  it('turns arbitrary msgpack values into readings or HoldfastError(INVALID_BULK)', () => {
    const packr = new Packr({ useRecords: false });
    const reading = fc.record({ topic: fc.string(), payload: fc.oneof(fc.string(), fc.uint8Array()), seq: fc.double(), ts: fc.anything() }, { requiredKeys: [] });
    const value = fc.oneof(fc.anything(), fc.array(reading), fc.array(fc.oneof(reading, fc.anything())));
    fc.assert(fc.property(value, (v) => expectBulkResultOrInvalid(packr.pack(v))), { numRuns: 3000 });
  });

  it('rejects truncated bulks and huge declared lengths quickly', () => {
    const good = packBulk([{ topic: 'a/b', payload: '{"n":1}', seq: 1, ts: 1 }, { topic: 'a/b', payload: new Uint8Array([1, 2]), seq: 2, ts: 2 }]);
    for (let cut = 1; cut < good.length; cut++) expectBulkResultOrInvalid(good.subarray(0, cut));
    // array32 / map32 / bin32 / str32 headers that promise ~4 billion items or bytes with none following.
    for (const head of [0xdd, 0xdf, 0xc6, 0xdb]) {
      const started = performance.now();
      assert.throws(() => unpackBulk(Uint8Array.from([head, 0xff, 0xff, 0xff, 0xff])), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_BULK);
      assert.ok(performance.now() - started < 1000, 'no loop or allocation over the declared length');
    }
    assert.throws(() => unpackBulk(new Uint8Array(0)), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_BULK);
    assert.throws(() => unpackBulk('not bytes' as unknown as Uint8Array), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_BULK);
  });

  it('round-trips arbitrary readings through packBulk, in order', () => {
    const reading = fc.record({
      topic: fc.string({ minLength: 1, unit: 'grapheme' }),
      payload: fc.oneof(fc.string({ unit: 'grapheme' }), fc.uint8Array({ maxLength: 300 })),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      ts: fc.double({ noNaN: true, noDefaultInfinity: true }),
    });
    fc.assert(
      fc.property(fc.array(reading, { maxLength: 30 }), (readings) => {
        const out = unpackBulk(packBulk(readings));
        assert.equal(out.length, readings.length);
        readings.forEach((r, i) => {
          const got = out[i]!;
          assert.equal(got.topic, r.topic);
          assert.equal(got.seq, r.seq);
          assert.ok(got.ts === r.ts, `ts ${got.ts} !== ${r.ts}`); // msgpack stores -0 as the integer 0
          assert.deepEqual(got.payload, Buffer.from(r.payload));
        });
      }),
      { numRuns: 500 },
    );
  });
});

const DEVICE = 'bulk-device';
const RATE = 50;
const READINGS = 400;

describe('bulk drain through a link outage on a 100 ms RTT link (real Mosquitto)', () => {
  let broker: Broker;
  let proxy: LinkProxy;
  const dir = tempDir('bulk');

  before(async () => {
    broker = await startBroker({ persistence: true });
    proxy = await startLinkProxy({ targetPort: broker.port });
    proxy.setLatency(50);
  });

  after(async () => {
    await proxy?.close();
    await broker?.close();
    dir.remove();
  });

  it('delivers every reading exactly once and in order, several per bulk', async () => {
    let multiReadingBulks = 0;
    let bulkMessages = 0;
    const extract = (msg: AuditMessage): Reading[] => {
      if (!msg.topic.startsWith('holdfast/bulk/')) return extractReadingNumber(msg);
      const readings = unpackBulk(msg.payload);
      bulkMessages++;
      if (readings.length > 1) multiReadingBulks++;
      return readings.flatMap((r) => extractReadingNumber({ topic: r.topic, payload: r.payload }));
    };
    const auditor = await startAuditor({ url: broker.url, topics: ['sensors/#', 'holdfast/bulk/#'], extract });
    let client: HoldfastClient | undefined;
    try {
      client = await open({
        broker: proxy.url,
        clientId: DEVICE,
        cacheDir: dir.path,
        timeoutMs: 1000,
        reconnect: { minMs: 100, maxMs: 500 },
        bulk: { maxMessages: 50 },
      });
      const c = client;
      const states: string[] = [];
      c.on('state', (s: string) => states.push(s));
      let n = 0;
      const timer = setInterval(() => {
        if (n < READINGS) c.publish(`sensors/${DEVICE}/temperature`, JSON.stringify({ device: DEVICE, n: ++n, celsius: 21.5 }));
      }, 1000 / RATE);
      try {
        // Delivering one at a time before the outage, so the backlog after it is what gets bulked.
        await waitUntil(() => c.stats().delivered >= 20, 15_000, 'readings delivered before the outage');
        await proxy.outage(3000);
        await waitUntil(() => n >= READINGS, (READINGS / RATE) * 1000 + 15_000, 'every reading published');
      } finally {
        clearInterval(timer);
      }
      await c.drained();
      const expected = Array.from({ length: READINGS }, (_, i) => i + 1);
      const report = await auditor.waitFor({ [DEVICE]: expected }, 30_000);
      assert.equal(report.lost, 0, `lost readings: ${JSON.stringify(report.devices[DEVICE]?.missing)}`);
      assert.equal(report.duplicates, 0);
      assert.equal(report.outOfOrder, 0);
      assert.deepEqual(auditor.arrivals(DEVICE), expected);
      assert.ok(states.includes('draining'), `the outage must have made the client drain; states: ${states.join(',')}`);
      assert.ok(multiReadingBulks > 0, `at least one bulk must carry several readings (bulk messages: ${bulkMessages})`);
      assert.equal(c.stats().delivered, READINGS);
    } finally {
      await client?.close();
      await auditor.close();
    }
  });
});
