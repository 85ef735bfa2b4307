/**
 * Paths found by reading the rewritten worker and disk path as an attacker (issues F and G). Each test
 * reproduces one against a real Mosquitto, judged by the independent auditor after a settle window,
 * and failed on the code it was written against (the comment above each names the cause, as it was);
 * each fix is in the commit that removed its todo.
 */
import assert from 'node:assert/strict';
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import mqtt from 'mqtt';
import { open, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import type { DeviceProcess } from '@holdfast/testkit';
import { assertEvictedByPriority, onePriority } from './eviction.js';
import { acceptedNumbers, auditedBrokerWithProxy, drainOutcome, needsRoot, skipUnlessCI, sleep, startDevice, tempDir, tinyTmpfs, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();
/** Evictions a device reported, summed over its 'evict' events. */
const evictedBy = (device: DeviceProcess): number => device.events.reduce((sum, e) => sum + (typeof e.evict === 'number' ? e.evict : 0), 0);

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const reading = (clientId: string, n: number): string => JSON.stringify({ device: clientId, n });
/** How long a correct client gets to deliver after its restart. */
const SETTLE_MS = 10_000;

function clientOptions(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, timeoutMs: 500, closeTimeoutMs: 2000, reconnect: { minMs: 100, maxMs: 300 }, ...extra };
}

/** Runs `body` with a client open on `cacheDir`, and closes it whatever happens. */
async function withClient<T>(options: HoldfastOptions, body: (client: HoldfastClient) => Promise<T>): Promise<T> {
  const client = await open(options);
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

describe('attack paths (issues F and G)', () => {
  /**
   * Requeued dead letters keep their old seqs, below the delivered floor. The floor is held below them
   * only in memory: DeliveryLedger.requeuing() (delivery-ledger.ts:121) never writes the lowered floor
   * to the progress file, and in journal mode it does not even hold it (ledger.#delivered tracks only
   * cached exchanges, so `seq <= #delivered` is false for a reading dead-lettered from memory). The
   * progress file still says "everything up to the last PUBREC is done". A close() while the link is
   * down, or a crash, before the requeued reading is sent: the next start's sweepAtStart()
   * (delivery-ledger.ts:132) removes [1, floor] from the cache, the requeued reading with it. It is no
   * longer a dead letter either (requeue moved it out in the same transaction): gone without a trace.
   */
  it('a dead letter requeued while the link is down survives a close and a restart', { timeout: 90_000 }, async () => {
    const clientId = 'dev-attack-requeue';
    const dir = tempDir('attack-requeue');
    const poisonTopic = `sensors/${clientId}/poison`;
    try {
      await withClient(clientOptions(clientId, dir.path, { durability: 'journal', deadLetterAfterDisconnects: 1 }), async (c) => {
        // The proxy drops the connection on the poison topic (AWS IoT Core's answer to a forbidden one):
        // reading 2 is dead-lettered after one drop, and reading 3 is delivered after it.
        rig.proxy.disconnectOnTopic(poisonTopic);
        c.publish(`sensors/${clientId}`, reading(clientId, 1));
        c.publish(poisonTopic, reading(clientId, 2));
        c.publish(`sensors/${clientId}`, reading(clientId, 3));
        await rig.auditor.waitFor({ [clientId]: [1, 3] }, SETTLE_MS);
        await waitUntil(() => c.stats().deadLettered === 1, SETTLE_MS, 'reading 2 dead-lettered');
        assert.equal(await drainOutcome(c, SETTLE_MS), 'drained');
        rig.proxy.disconnectOnTopic(undefined);
        // The broker is unreachable when the reading is requeued, and when the client closes.
        await rig.proxy.refuse(true);
        await waitUntil(() => !c.stats().connected, SETTLE_MS, 'the link down');
        assert.equal(await c.requeueDeadLetters(), 1);
      });
      await rig.proxy.refuse(false);
      await withClient(clientOptions(clientId, dir.path, { durability: 'journal' }), async (c) => {
        const outcome = await drainOutcome(c, SETTLE_MS);
        const letters = await c.deadLetters();
        const report = await rig.auditor.waitFor({ [clientId]: [1, 2, 3] }, SETTLE_MS);
        assert.deepEqual(
          { outcome, arrived: rig.auditor.arrivals(clientId), deadLetters: letters.length },
          { outcome: 'drained', arrived: [1, 3, 2], deadLetters: 0 },
          `the requeued reading is delivered after the restart (or still a dead letter); lost: ${report.lost}`,
        );
      });
    } finally {
      rig.proxy.disconnectOnTopic(undefined);
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });

  /**
   * A format-2 cache (the previous holdfast) left an exchange at its PUBREL: the outgoing table holds
   * the PUBREL with the reading's seq, and the reading is still in `records` (format 2 removed it at
   * PUBCOMP). Format 3 resends the PUBREL (recovery.ts), the broker releases the reading and answers
   * PUBCOMP, and Dispatcher.#finish (dispatcher.ts:241) hands the reading to the ledger's batched
   * removal. But no PUBREL is put in this run, so no progress is ever written for it: the progress
   * file's floor stays 0, and DeliveryLedger.removeDelivered (delivery-ledger.ts:100) removes only
   * through min(delivered, floor) = 0. In spill mode nothing else moves the floor (direct exchanges
   * write no progress), so the delivered reading stays in the cache for good: drained() never
   * resolves, and the next start sends it again, as a new PUBLISH under a derived packet id: a duplicate.
   */
  it('a format-2 PUBREL left in flight: its reading leaves the cache once delivered, and is never sent again', { timeout: 90_000 }, async (t) => {
    if (rig.broker.kind !== 'mosquitto') return skipUnlessCI(t, 'needs mosquitto (a persistent QoS 2 session held at PUBREC)');
    const clientId = 'dev-attack-legacy';
    const dir = tempDir('attack-legacy');
    try {
      // 1. The old holdfast's PUBLISH reached the broker, which holds it awaiting PUBREL (persistent
      //    session); the PUBREL never made it. A plain MQTT.js client through the proxy plays that run.
      const dropRel = rig.proxy.dropPackets('to-broker', 'pubrel');
      const old = await mqtt.connectAsync(rig.proxy.url, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 0 });
      const sent = new Promise<number>((resolve) => old.on('packetsend', (p) => p.cmd === 'pubrel' && resolve(p.messageId!)));
      void old.publishAsync(`sensors/${clientId}`, reading(clientId, 1), { qos: 2 }).catch(() => undefined);
      const messageId = await sent;
      await waitUntil(() => dropRel.applied === 1, 5000, 'the PUBREL dropped');
      old.end(true);
      // 2. Its cache: reading 1 in `records` (cached offline by today's holdfast), the PUBREL in the
      //    outgoing table, format 2, no progress file (format 2 had none).
      let seq = 0;
      await withClient({ broker: 'mqtt://127.0.0.1:1', clientId, cacheDir: dir.path, reconnect: { minMs: 60_000, maxMs: 60_000 } }, async (c) => {
        seq = c.publish(`sensors/${clientId}`, reading(clientId, 1));
        await c.flush();
      });
      const db = openLmdb({ path: join(dir.path, 'cache.mdb'), maxDbs: 8, noSubdir: true });
      const meta = db.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
      const outgoing = db.openDB<unknown, number>({ name: 'outgoing', encoding: 'msgpack' });
      await db.transaction(() => {
        meta.putSync('format', 2);
        outgoing.putSync(messageId, { messageId, seqs: [seq], packet: { cmd: 'pubrel', qos: 2, messageId } });
      });
      await db.close();
      rmSync(join(dir.path, 'progress'));
      // 3. Today's holdfast opens it: the PUBREL goes out, the broker releases reading 1.
      const first = await withClient(clientOptions(clientId, dir.path), async (c) => {
        await rig.auditor.waitFor({ [clientId]: [1] }, SETTLE_MS);
        return drainOutcome(c, SETTLE_MS);
      });
      // 4. A restart.
      const second = await withClient(clientOptions(clientId, dir.path), (c) => drainOutcome(c, SETTLE_MS));
      await sleep(500);
      assert.deepEqual(
        { first, second, arrivals: rig.auditor.arrivals(clientId) },
        { first: 'drained', second: 'drained', arrivals: [1] },
        'reading 1 is released once by the recovered PUBREL, then the cache is empty',
      );
    } finally {
      dir.remove();
    }
  });

  /**
   * Journal mode at QoS 1 (for AWS IoT Core and Azure IoT Hub). The intake log replays after a crash
   * every reading that is neither at or below the cache's appendedThrough nor done by the progress file
   * (intake-replay.ts:33). At QoS 1 a reading sent from memory writes no progress at all: the floor is
   * written only from the PUBREL hook (dispatcher.ts:147, never called without a PUBREL) and by
   * recordAck for *cached* exchanges (dispatcher.ts:241-243). So the floor stays 0 while the link is
   * healthy, and a SIGKILL makes the next start send again every reading in the intake log's open
   * segments (up to 4 MiB of them), all of them long delivered. QoS 1 allows a duplicate of the one in
   * flight, not a resend of everything since the segment began.
   */
  it('journal at QoS 1: a SIGKILL after delivery resends at most the reading in flight', { timeout: 90_000 }, async () => {
    const clientId = 'dev-attack-qos1-journal';
    const dir = tempDir('attack-qos1');
    const common = { broker: rig.proxy.url, clientId, cacheDir: dir.path, durability: 'journal', qos: 1, protocol: rig.protocol } as const;
    try {
      const first = startDevice({ ...common, rate: 200, count: 200, after: 'idle' });
      await first.waitForEvent((e) => e.published === 200, 20_000);
      await rig.auditor.waitFor({ [clientId]: range(1, 200) }, SETTLE_MS);
      assert.equal((await first.kill('SIGKILL')).signal, 'SIGKILL');
      const second = startDevice({ ...common, count: 0, after: 'drain' });
      await second.waitForEvent((e) => e.closed === true, 30_000);
      const report = await rig.auditor.waitFor({ [clientId]: acceptedNumbers(first) }, SETTLE_MS, { settleMs: 1000 });
      assert.equal(report.lost, 0);
      assert.ok(report.duplicates <= 1, `at most the one in flight twice; the restart sent delivered readings again: ${report.duplicates} duplicates of 200 readings`);
    } finally {
      dir.remove();
    }
  });

  /**
   * Delivered records leave the cache in batches (one transaction per 256 exchanges or per second,
   * DeliveryLedger.completed, delivery-ledger.ts:86-87), and until then they still count in the cache's
   * totals. An append meanwhile evicts against those totals (Cache.append → #evictInTxn, cache.ts:184),
   * and delivered-but-not-removed records are not protected (CacheWriter.#isProtected,
   * cache-writer.ts:52, covers only `remove()`'s records, not the ledger's batch). So with the cache
   * below maxCache in pending readings, a burst of new input evicts pending readings of a lower
   * priority, while delivered readings of a higher priority keep their places: a loss (counted and
   * emitted, but of readings the limit had room for).
   */
  it('readings awaiting their batched removal never make the cache evict pending readings it has room for', { timeout: 90_000 }, async () => {
    const clientId = 'dev-attack-evict-floor';
    const dir = tempDir('attack-evict-floor');
    let evicted = 0;
    try {
      await rig.proxy.refuse(true);
      await withClient(clientOptions(clientId, dir.path, { maxCache: { messages: 300 } }), async (c) => {
        c.on('evict', (e: { messages: number }) => (evicted += e.messages));
        for (let n = 1; n <= 200; n++) c.publish(`sensors/${clientId}`, reading(clientId, n), { priority: 10 });
        for (let n = 201; n <= 300; n++) c.publish(`sensors/${clientId}`, reading(clientId, n), { priority: 1 });
        await c.flush();
        assert.equal(c.stats().cached.messages, 300, 'the cache is at its limit, nothing evicted yet');
        await rig.proxy.refuse(false);
        // The drain delivers the oldest (priority 10); their removal waits for the batch.
        await waitUntil(() => c.stats().delivered >= 20, SETTLE_MS, 'the drain under way');
        const delivered = c.stats().delivered;
        // As many new readings as were delivered: the pending readings fit within maxCache.
        for (let n = 301; n < 301 + delivered; n++) c.publish(`sensors/${clientId}`, reading(clientId, n), { priority: 5 });
        await c.flush();
        const outcome = await drainOutcome(c, SETTLE_MS);
        const report = await rig.auditor.waitFor({ [clientId]: range(1, 300 + delivered) }, SETTLE_MS);
        assert.deepEqual(
          { outcome, evicted, lost: report.lost, missing: report.devices[clientId]?.missing.slice(0, 5) },
          { outcome: 'drained', evicted: 0, lost: 0, missing: [] },
          `at most 300 readings pending (${delivered} delivered, ${delivered} new), maxCache 300: nothing is evicted`,
        );
      });
    } finally {
      await rig.proxy.refuse(false);
      dir.remove();
    }
  });

  /**
   * Journal mode on a full disk. While the cache cannot write, the facade's IntakeLog.append skips the
   * log (intake-log.ts:55, `!this.#cacheWritable()`; a failed write(2) skips it too, for a second),
   * so those readings live only in the worker's memory (the disk-full overflow). But the worker's
   * IntakeSync.received() (main.ts:128) is told of every batch, whether or not the facade logged it,
   * and the next sync marks it synced (intake-sync.ts:102; with no segment open, at once). flush()
   * waits for JournalPolicy.lowestUnsafe = max(lowestVolatile, syncedThrough + 1)
   * (durability/journal.ts:22), so it confirms readings that are in no file at all, and a SIGKILL
   * (not even a power cut) then loses them, with no eviction reported.
   */
  it('journal mode, disk full: a reading flush() confirmed survives a SIGKILL (or was evicted and reported)', { timeout: 120_000 }, async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const clientId = 'dev-attack-full-flush';
    const disk = tinyTmpfs('attack-full-flush');
    const filler = join(disk.path, 'other-files');
    const common = { broker: rig.proxy.url, clientId, cacheDir: join(disk.path, 'cache'), durability: 'journal', protocol: rig.protocol } as const;
    const devices: DeviceProcess[] = [];
    try {
      const s = statfsSync(disk.path);
      writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - 384 * 1024));
      await rig.proxy.refuse(true);
      const first = startDevice({ ...common, rate: 200, pad: 1000, flushMs: 100, timeoutMs: 1000, after: 'watch' });
      devices.push(first);
      const full = await first.waitForEvent((e) => (e.stats as { cacheWritable?: boolean } | undefined)?.cacheWritable === false, 30_000);
      const fullFrom = Math.max(...acceptedNumbers(first).slice(0, first.events.indexOf(full)));
      // A confirmation that covers readings published well after the disk filled.
      await first.waitForEvent((e) => typeof e.confirmed === 'number' && e.confirmed > fullFrom + 100, 20_000);
      assert.equal((await first.kill('SIGKILL')).signal, 'SIGKILL');
      const confirmed = Math.max(...first.events.filter((e) => typeof e.confirmed === 'number').map((e) => e.confirmed as number));
      rmSync(filler);
      await rig.proxy.refuse(false);
      const second = startDevice({ ...common, count: 0, timeoutMs: 1000, after: 'drain' });
      devices.push(second);
      await second.waitForEvent((e) => e.drained === true, 60_000);
      const mustArrive = acceptedNumbers(first).filter((n) => n <= confirmed);
      const report = await rig.auditor.waitFor({ [clientId]: mustArrive }, SETTLE_MS);
      const evicted = evictedBy(first) + evictedBy(second);
      const missing = report.devices[clientId]?.missing ?? [];
      assert.deepEqual(
        { lostBeyondEvicted: Math.max(0, missing.length - evicted), duplicates: report.duplicates },
        { lostBeyondEvicted: 0, duplicates: 0 },
        `${missing.length} of ${mustArrive.length} readings flush() confirmed are lost (${missing[0]}…${missing.at(-1)}; the disk filled at reading ${fullFrom}), ${evicted} evicted and reported`,
      );
      // Judged at the subscriber, not by the client's count: whatever is gone went oldest first (one priority).
      assertEvictedByPriority(onePriority(acceptedNumbers(first)), rig.auditor.arrivals(clientId));
    } finally {
      await rig.proxy.refuse(false);
      for (const device of devices) await device.kill().catch(() => undefined);
      disk.remove();
    }
  });

  /**
   * close() on a full disk. Readings the cache refused wait in DiskFullRecovery's overflow, in memory,
   * for the retry that evicts to make room (disk-full.ts:211). Sender.stop() (sender.ts:375) calls
   * writer.stop(), which cancels that retry (disk-full.ts:149) and adds the windowed input to the same
   * overflow; shutdown (main.ts:173) then closes the cache and replies success. The overflow is simply
   * dropped: close() resolves, no eviction is reported, and the readings are gone (spill mode has no
   * other copy; journal mode has none either, since the intake log skips writes while the cache is
   * not writable).
   */
  it('close() on a full disk never resolves as if the readings waiting for space were safe', { timeout: 120_000 }, async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const clientId = 'dev-attack-full-close';
    const disk = tinyTmpfs('attack-full-close');
    const filler = join(disk.path, 'other-files');
    const cacheDir = join(disk.path, 'cache');
    let evicted = 0;
    const pad = 'x'.repeat(1000);
    try {
      const s = statfsSync(disk.path);
      writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - 256 * 1024));
      await rig.proxy.refuse(true);
      const first = await open(clientOptions(clientId, cacheDir));
      first.on('evict', (e: { messages: number }) => (evicted += e.messages));
      first.on('error', () => undefined);
      for (let n = 1; n <= 400; n++) first.publish(`sensors/${clientId}`, JSON.stringify({ device: clientId, n, pad }));
      void first.flush().catch(() => undefined);
      await waitUntil(() => !first.stats().cacheWritable && first.stats().memoryQueued > 0, 10_000, 'readings waiting for disk space');
      const waiting = first.stats().memoryQueued;
      const closed = await first.close().then(
        () => 'resolved',
        (err: { code: string }) => `rejected with ${err.code}`,
      );
      rmSync(filler);
      await rig.proxy.refuse(false);
      await withClient(clientOptions(clientId, cacheDir), async (c) => {
        c.on('evict', (e: { messages: number }) => (evicted += e.messages));
        assert.equal(await drainOutcome(c, SETTLE_MS), 'drained');
      });
      const report = await rig.auditor.waitFor({ [clientId]: range(1, 400) }, SETTLE_MS);
      const lostSilently = Math.max(0, report.lost - evicted);
      assert.ok(
        lostSilently === 0 || closed !== 'resolved',
        `close() ${closed} with ${waiting} readings waiting for disk space; ${report.lost} lost, ${evicted} evicted and reported: ${lostSilently} lost silently`,
      );
    } finally {
      await rig.proxy.refuse(false);
      disk.remove();
    }
  });
});
