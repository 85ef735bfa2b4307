/**
 * Guarantee 10: a record that crashes the worker does not crash it forever. After three crashes in a
 * row at the same record, the next worker moves it to the dead letters with the reason, and sending
 * goes on. Driven by the test-only fault hook (a crash just before a given seq is handed to
 * MQTT.js). A real corrupt record in an encrypted cache (its authentication fails on decode) never
 * crashes the worker: the drain dead-letters it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { open, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { injectFault, restartEvents, within } from './fault-hook.js';
import { auditedBrokerWithProxy, tempDir } from './helpers.js';

const rig = auditedBrokerWithProxy();
const CACHE_KEY = 'a'.repeat(64);

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, timeoutMs: 1000, reconnect: { minMs: 100, maxMs: 300 }, connectTimeoutMs: 1000, ...extra };
}

function publishRange(client: HoldfastClient, device: string, from: number, to: number, seqOf: Map<number, number>): void {
  for (let n = from; n <= to; n++) seqOf.set(n, client.publish(`sensors/${device}`, JSON.stringify({ device, n })));
}

/** The LMDB key of a cached record: priority (1 byte), then the seq in 7 bytes big-endian. */
function recordKey(priority: number, seq: number): Buffer {
  const key = Buffer.alloc(8);
  key[0] = priority;
  key.writeUIntBE(Math.floor(seq / 2 ** 32), 1, 3);
  key.writeUInt32BE(seq >>> 0, 4);
  return key;
}

/** Flips the last byte of each record's sealed value (its GCM tag): the record can no longer be opened. */
async function corruptRecords(cacheDir: string, seqs: number[]): Promise<void> {
  const root = openLmdb({ path: join(cacheDir, 'cache.mdb'), noSubdir: true, maxDbs: 8 });
  const records = root.openDB<Buffer, Buffer>({ name: 'records', encoding: 'binary', keyEncoding: 'binary' });
  for (const seq of seqs) {
    const key = recordKey(5, seq);
    const value = Buffer.from(records.get(key)!);
    assert.equal(value[0], 2, 'a sealed record');
    value[value.length - 1] = value[value.length - 1]! ^ 0xff;
    await records.put(key, value);
  }
  await root.close();
}

describe('supervision: a record that crashes the worker goes to the dead letters', () => {
  for (const durability of ['spill', 'journal'] as const) {
    it(`${durability}: three crashes in a row at one record dead-letter it, and the rest is delivered in order`, async () => {
      const device = `dev-poison-${durability}`;
      const dir = tempDir(`poison-${durability}`);
      const seqOf = new Map<number, number>();
      try {
        const client = await open(options(device, dir.path, { durability }));
        const restarts = restartEvents(client);
        if (durability === 'spill') {
          // Cached while offline: the worker meets the record as it drains the cache.
          await rig.proxy.refuse(true);
          publishRange(client, device, 1, 20, seqOf);
          await client.flush();
          injectFault(client, 'crash-at-seq', seqOf.get(5)!);
          await rig.proxy.refuse(false);
        } else {
          // Sent directly: the first crash is as the record is handed to MQTT.js, then at each drain.
          // The hook is posted at once, the batch at the end of this tick: the worker is armed first.
          publishRange(client, device, 1, 20, seqOf);
          injectFault(client, 'crash-at-seq', seqOf.get(5)!);
        }
        await within(client.drained(), 60_000, 'drained()');
        const letters = await client.deadLetters();
        await client.close();

        assert.equal(restarts.length, 3, 'three crashes, then the record was out of the way');
        assert.ok(restarts.every((r) => r.lost.count === 0 && /crash while handling seq/.test(r.cause)));
        assert.equal(restarts[2]!.poison?.seq, seqOf.get(5));
        assert.deepEqual(
          letters.map((l) => l.seq),
          [seqOf.get(5)],
        );
        assert.match(letters[0]!.reason, /crashed 3 times in a row while handling this record/);
        assert.equal(JSON.parse(letters[0]!.payload.toString()).n, 5, 'kept whole, ready to requeue');
        const expected = [...seqOf.keys()].filter((n) => n !== 5);
        const report = await rig.auditor.waitFor({ [device]: expected }, 20_000);
        assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
        assert.ok(!rig.auditor.arrivals(device).includes(5));
      } finally {
        await rig.proxy.refuse(false);
        dir.remove();
      }
    });
  }

  it('a corrupt encrypted record, even the first one open() reads: dead-lettered as its stored bytes without a crash, the rest delivered', async () => {
    const device = 'dev-corrupt';
    const dir = tempDir('corrupt');
    const seqOf = new Map<number, number>();
    try {
      await rig.proxy.refuse(true);
      const first = await open(options(device, dir.path, { cacheKey: CACHE_KEY }));
      publishRange(first, device, 1, 10, seqOf);
      await first.flush();
      await first.close();
      // Reading 1 is decoded by open() itself (the cache's oldest age), reading 4 by the drain.
      await corruptRecords(dir.path, [seqOf.get(1)!, seqOf.get(4)!]);
      await rig.proxy.refuse(false);

      const client = await open(options(device, dir.path, { cacheKey: CACHE_KEY }));
      const restarts = restartEvents(client);
      await within(client.drained(), 60_000, 'drained()');
      const letters = await client.deadLetters();
      await client.close();

      assert.deepEqual(
        letters.map((l) => l.seq),
        [seqOf.get(1), seqOf.get(4)],
      );
      for (const letter of letters) {
        assert.match(letter.reason, /unreadable cache record: /);
        assert.equal(letter.topic, '');
      }
      assert.equal(restarts.length, 0, 'the worker never died on them');
      const report = await rig.auditor.waitFor({ [device]: [2, 3, 5, 6, 7, 8, 9, 10] }, 20_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
      assert.deepEqual(rig.auditor.arrivals(device), [2, 3, 5, 6, 7, 8, 9, 10]);
    } finally {
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });
});

