/**
 * Issue F section 3: what a restart finds in the cache, found by reading the sender. A backlog drained
 * after a restart must keep guarantee 3 (exactly once with a persistent session) through a second power
 * cut, and a cached record that cannot be read must not kill the worker on every start.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { open, type HoldfastOptions } from 'holdfast';
import type { DeviceProcess } from '@holdfast/testkit';
import { auditedBrokerWithProxy, drainOutcome, sleep, startDevice, tempDir, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** How long a fixed client gets to drain; today's code crashes or never does. */
const SETTLE_MS = 10_000;

/** A start on the cache: 'drained', or why not (open() itself can fail when the worker dies starting). */
async function startAndDrain(options: HoldfastOptions): Promise<string> {
  let client;
  try {
    client = await open(options);
  } catch (err) {
    const e = err as { code: string; message: string };
    return `open() rejected with ${e.code}: ${e.message}`;
  }
  try {
    return await drainOutcome(client, SETTLE_MS);
  } finally {
    await client.close();
  }
}

describe('restarts on a cache with a backlog (issue F section 3)', () => {
  /**
   * F#3.5. A spill-mode device restarts with a backlog and no packet in flight (the last run closed
   * gracefully: its exchange completed, and the removal deleted the persisted packet). The outgoing
   * store is therefore not persistent (OutgoingStore.recover found nothing), Sender.start goes to
   * DRAINING, and nothing persists the store before the drain sends (only #spill does, from DIRECT).
   * The broker releases the first drained reading on PUBREL; its PUBCOMP is held, and the device loses
   * power. The next start finds the reading in the cache with no packet id and sends it again as a new
   * message: a duplicate at a persistent-session subscriber, against guarantee 3.
   */
  it('F#3.5: spill mode, a power cut mid-drain after a restart: the reading in flight is resent with its packet id, not duplicated', { timeout: 120_000 }, async () => {
    const clientId = 'dev-drain-cut';
    const cache = tempDir('drain-cut');
    const devices: DeviceProcess[] = [];
    try {
      // A backlog: reading 1 is stuck (PUBCOMP held), so all 20 spill. close() lets reading 1 complete
      // (settleInflight) and sends nothing more: 2 to 20 stay cached, with no packet persisted.
      rig.proxy.holdDownstreamAt('pubcomp');
      const first = await open({ broker: rig.proxy.url, clientId, cacheDir: cache.path, protocolVersion: rig.protocol, timeoutMs: 300 });
      for (let n = 1; n <= 20; n++) first.publish(`sensors/${clientId}`, JSON.stringify({ device: clientId, n }));
      await waitUntil(() => rig.proxy.holdingDownstream && first.state === 'caching', 10_000, 'reading 1 stuck and the backlog spilled');
      const closed = first.close();
      rig.proxy.holdDownstreamAt(undefined);
      await closed;
      await rig.auditor.waitFor({ [clientId]: [1] }, 10_000);
      const deliveredBefore = rig.auditor.arrivals(clientId).length;

      const common = { broker: rig.proxy.url, clientId, cacheDir: cache.path, protocol: rig.protocol, durability: 'spill', timeoutMs: 300, count: 0 } as const;
      rig.proxy.holdDownstreamAt('pubcomp');
      const second = startDevice(common);
      devices.push(second);
      const opened = await second.waitForEvent((e) => e.open === true, 15_000);
      assert.equal(opened.state, 'draining', 'the restart found the backlog');
      await waitUntil(() => rig.proxy.holdingDownstream, 15_000, 'the PUBCOMP of the first drained reading');
      await waitUntil(() => rig.auditor.arrivals(clientId).length > deliveredBefore, 10_000, 'the broker releasing the drained reading');
      await second.kill('SIGKILL');
      rig.proxy.holdDownstreamAt(undefined);

      const third = startDevice({ ...common, after: 'drain' });
      devices.push(third);
      await third.waitForEvent((e) => e.drained === true, SETTLE_MS);
      await rig.auditor.waitFor({ [clientId]: range(1, 20) }, 10_000);
      await sleep(500); // a late duplicate would arrive now
      const report = rig.auditor.report({ [clientId]: range(1, 20) });
      assert.deepEqual(
        { lost: report.lost, duplicates: report.duplicates, outOfOrder: report.outOfOrder },
        { lost: 0, duplicates: 0, outOfOrder: 0 },
        `arrivals ${rig.auditor.arrivals(clientId).join(' ')}`,
      );
    } finally {
      rig.proxy.holdDownstreamAt(undefined);
      for (const device of devices) await device.kill().catch(() => undefined);
      cache.remove();
    }
  });

  /**
   * F#3.8. With a cacheKey, a record whose sealed bytes are damaged (GCM authentication fails) throws
   * from decodeRecord inside Sender.#drainNext, which runs in a promise callback of #scheduleCacheRead:
   * an unhandled rejection that kills the worker. Once it is the oldest record, Sender.start throws
   * already (#updateCacheStats reads its timestamp), so every start dies. It must go to the dead
   * letters with its reason, and the rest must drain.
   */
  it('F#3.8: a corrupt sealed record goes to the dead letters and the rest drains', { timeout: 90_000 }, async () => {
    const clientId = 'dev-corrupt-sealed';
    const dir = tempDir('corrupt-sealed');
    const cacheKey = randomBytes(32);
    const options = (broker: string): HoldfastOptions => ({ broker, clientId, cacheDir: dir.path, cacheKey, protocolVersion: rig.protocol, timeoutMs: 200, closeTimeoutMs: 1000 });
    try {
      const offline = await open(options('mqtt://127.0.0.1:1'));
      const seqs = Array.from({ length: 10 }, (_, i) => offline.publish(`sensors/${clientId}`, JSON.stringify({ device: clientId, n: i + 1 })));
      await offline.flush();
      assert.equal(offline.stats().cached.messages, 10);
      await offline.close();

      // Flip one byte of reading 4's ciphertext (every key has the same priority: key order is seq order).
      const db = openLmdb({ path: join(dir.path, 'cache.mdb'), maxDbs: 8, noSubdir: true });
      const records = db.openDB<Buffer, Buffer>({ name: 'records', encoding: 'binary', keyEncoding: 'binary' });
      const [, , , fourth] = [...records.getRange({ limit: 4 })];
      const damaged = Buffer.from(fourth!.value);
      damaged[damaged.length - 1]! ^= 0xff;
      await records.put(fourth!.key, damaged);
      await db.close();

      const outcomes = [await startAndDrain(options(rig.proxy.url)), await startAndDrain(options(rig.proxy.url))];
      assert.deepEqual(outcomes, ['drained', 'drained'], 'neither start dies at the damaged record');
      const report = await rig.auditor.waitFor({ [clientId]: [1, 2, 3, ...range(5, 10)] }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
      const reader = await open(options('mqtt://127.0.0.1:1'));
      try {
        const letters = await reader.deadLetters();
        assert.deepEqual(letters.map((l) => l.seq), [seqs[3]], 'the damaged record (reading 4) is a dead letter');
        assert.ok(letters[0]!.reason.length > 0, 'with its reason');
      } finally {
        await reader.close();
      }
    } finally {
      dir.remove();
    }
  });
});
