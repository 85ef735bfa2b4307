/**
 * Issue F section 3: paths where the broker refuses a message that is being resent, found by reading
 * the sender. Real Mosquitto refuses with an ACL (MQTT 5 PUBREC 0x87, which MQTT.js parses) and with
 * `message_size_limit` (Mosquitto 2.0 answers an over-size QoS 2 PUBLISH with PUBREC 0x95, which
 * mqtt-packet cannot parse). The proxy holds the broker's answer so the refused packet is still in
 * flight when the link drops or the device loses power.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The progress file is the worker's internals, not public API: the built module is imported by path.
import { readProgress } from '../packages/holdfast/dist/worker/progress-file.js';
import { after, describe, it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { open, type DeadLetter, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import type { DeviceProcess } from '@holdfast/testkit';
import { acceptedNumbers, auditedBrokerWithProxy, drainOutcome, skipUnlessCI, sleep, startDevice, tempDir, waitUntil } from './helpers.js';

/** Over this many bytes Mosquitto refuses a PUBLISH with a reason code MQTT.js cannot parse. */
const SIZE_LIMIT = 2000;
const aclDir = mkdtempSync(join(tmpdir(), 'holdfast-refusal-acl-'));
const aclPath = join(aclDir, 'acl');
writeFileSync(aclPath, 'topic readwrite sensors/#\n', { mode: 0o644 });
const rig = auditedBrokerWithProxy({ extraConfig: [`acl_file ${aclPath}`, `message_size_limit ${SIZE_LIMIT}`] });
after(() => rmSync(aclDir, { recursive: true, force: true }));

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const NEEDS_MOSQUITTO = 'needs mosquitto (an ACL and message_size_limit)';
/** How long a fixed client gets to settle after its restart; today's code never does. */
const SETTLE_MS = 10_000;

const reading = (clientId: string, n: number, pad = ''): string => JSON.stringify({ device: clientId, n, ...(pad ? { pad } : {}) });

function clientOptions(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: 5, timeoutMs: 300, closeTimeoutMs: 1000, reconnect: { minMs: 100, maxMs: 300 }, ...extra };
}

/**
 * Leaves reading 1 in flight in the cache: the proxy holds the broker's PUBCOMP, the client spills
 * (persisting MQTT.js's outgoing store with the PUBREL) and closes. The broker has already released
 * the reading to subscribers.
 */
async function leaveInFlight(clientId: string, cacheDir: string, before?: (client: HoldfastClient) => Promise<void>): Promise<void> {
  const client = await open(clientOptions(clientId, cacheDir));
  try {
    await before?.(client);
    rig.proxy.holdDownstreamAt('pubcomp');
    client.publish(`sensors/${clientId}`, reading(clientId, 1));
    await waitUntil(() => rig.proxy.holdingDownstream && client.state === 'caching', 10_000, 'reading 1 spilled with its PUBCOMP held');
  } finally {
    await client.close();
    rig.proxy.holdDownstreamAt(undefined);
  }
}

/** The dead letters in a stopped device's cache, read by a client that cannot reach any broker. */
async function deadLettersIn(cacheDir: string, clientId: string): Promise<DeadLetter[]> {
  const client = await open({ broker: 'mqtt://127.0.0.1:1', clientId, cacheDir, protocolVersion: 5, reconnect: { minMs: 60_000, maxMs: 60_000 } });
  try {
    return await client.deadLetters();
  } finally {
    await client.close();
  }
}

interface PowerCut {
  cacheDir: string;
  first: DeviceProcess;
  second: DeviceProcess;
  cleanup(): Promise<void>;
}

/**
 * Reading 1 is the poison message. The proxy holds the broker's PUBREC for it, so it is still in flight
 * when the device spills (timeoutMs, persisting the outgoing store) and then loses power (SIGKILL).
 * The second run starts on the same cache: MQTT.js resends reading 1 from LMDB with its packet id and
 * the broker refuses it again, now with nothing of this run in flight.
 */
async function poisonInFlightAtPowerCut(clientId: string, poison: { topic?: string; pad?: number }): Promise<PowerCut> {
  const cache = tempDir('refusal');
  const common = { broker: rig.proxy.url, clientId, cacheDir: cache.path, protocol: 5, timeoutMs: 300 } as const;
  rig.proxy.holdDownstreamAt('pubrec');
  const first = startDevice({ ...common, rate: 100, count: 10, poison: { at: 1, ...poison }, after: 'flush' });
  let second: DeviceProcess | undefined;
  const cleanup = async (): Promise<void> => {
    rig.proxy.holdDownstreamAt(undefined);
    await first.kill().catch(() => undefined);
    await second?.kill().catch(() => undefined);
    cache.remove();
  };
  try {
    await first.waitForEvent((e) => e.flushed === true, 20_000);
    assert.ok(rig.proxy.holdingDownstream, "the broker's answer to the poison message was held back");
    assert.equal((await first.kill('SIGKILL')).signal, 'SIGKILL');
    rig.proxy.holdDownstreamAt(undefined);
    second = startDevice({ ...common, rate: 100, count: 10, nStart: 11, after: 'drain' });
    await second.waitForEvent((e) => typeof e.published === 'number', 15_000);
    return { cacheDir: cache.path, first, second, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

describe('refusals of a resent packet (issue F section 3)', () => {
  /**
   * F#3.6. The recovered packet is refused (PUBREC 0x87, not authorized). Sender.onCompleted's branch
   * for a recovered entry calls #completed(..., refusal = undefined): MQTT.js's publish callback that
   * carries the refusal belongs to the dead run, so the refusal is lost, and the reading is counted as
   * delivered and removed from the cache instead of going to the dead letters.
   */
  it('F#3.6: a refusal of a recovered packet goes to the dead letters, not to delivered', { timeout: 90_000 }, async (t) => {
    if (rig.broker.kind !== 'mosquitto') return skipUnlessCI(t, NEEDS_MOSQUITTO);
    const cut = await poisonInFlightAtPowerCut('dev-refused-recovered', { topic: 'restricted/dev-refused-recovered' });
    try {
      const drained = await cut.second.waitForEvent((e) => e.drained === true, SETTLE_MS);
      await cut.second.waitForEvent((e) => e.closed === true, 10_000);
      const expected = [...acceptedNumbers(cut.first), ...acceptedNumbers(cut.second)].filter((n) => n !== 1);
      const report = await rig.auditor.waitFor({ 'dev-refused-recovered': expected }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
      const letters = await deadLettersIn(cut.cacheDir, 'dev-refused-recovered');
      assert.deepEqual(
        { delivered: drained.delivered, deadLettered: drained.deadLettered, letters: letters.map((l) => l.topic) },
        { delivered: expected.length, deadLettered: 1, letters: ['restricted/dev-refused-recovered'] },
        'the refused reading is a dead letter, and not counted as delivered',
      );
      assert.match(letters[0]!.reason, /not authorized/i);
    } finally {
      await cut.cleanup();
    }
  });

  /**
   * F#3.3 (second half). The recovered packet is over the broker's size limit: Mosquitto answers PUBREC
   * 0x95, which mqtt-packet cannot parse. Sender.onUnreadableRefusal returns at once when nothing of
   * this run is in flight, so the stream is not destroyed, MQTT.js keeps waiting for an answer that
   * never comes, and #recoveredPackets stays 1: #pump never sends anything again.
   */
  it('F#3.3: an unparseable refusal of a recovered packet does not stop sending', { timeout: 90_000 }, async (t) => {
    if (rig.broker.kind !== 'mosquitto') return skipUnlessCI(t, NEEDS_MOSQUITTO);
    const cut = await poisonInFlightAtPowerCut('dev-oversize-recovered', { pad: SIZE_LIMIT * 2 });
    try {
      const expected = [...acceptedNumbers(cut.first), ...acceptedNumbers(cut.second)].filter((n) => n !== 1);
      const report = await rig.auditor.waitFor({ 'dev-oversize-recovered': expected }, SETTLE_MS);
      assert.deepEqual(
        { lost: report.lost, duplicates: report.duplicates, outOfOrder: report.outOfOrder },
        { lost: 0, duplicates: 0, outOfOrder: 0 },
        `every reading behind the refused one arrives (missing: ${report.devices['dev-oversize-recovered']?.missing.join(' ')}); the device's last stats ${JSON.stringify(cut.second.events.findLast((e) => e.stats !== undefined)?.stats)}`,
      );
      await cut.second.waitForEvent((e) => e.closed === true, SETTLE_MS);
      const letters = await deadLettersIn(cut.cacheDir, 'dev-oversize-recovered');
      assert.equal(letters.length, 1, 'the over-size reading is a dead letter');
      assert.match(letters[0]!.reason, /reason code/);
    } finally {
      await cut.cleanup();
    }
  });

  /**
   * F#3.3 (first half). The link drops while the broker's PUBREC for an over-size reading is on its
   * way; after the reconnect MQTT.js resends the reading from its store (`_storeProcessing` is set
   * until that exchange ends). Mosquitto refuses it with PUBREC 0x95, which mqtt-packet cannot parse:
   * Sender.onUnreadableRefusal ends the exchange and destroys the socket. The next reading is published
   * at once, before the socket's 'close', so MQTT.js queues it behind the store resend
   * (`_storeProcessingQueue`); the close then fails it with Error('Connection closed'), which has no
   * numeric reason code, and the sender ignores it. The in-flight slot never clears and the reading
   * was never stored, so nothing is ever sent again: every later reading waits in the cache.
   */
  it('F#3.3: a publish MQTT.js queued behind its store resend and failed with the link does not wedge the queue', { timeout: 90_000 }, async (t) => {
    if (rig.broker.kind !== 'mosquitto') return skipUnlessCI(t, NEEDS_MOSQUITTO);
    const clientId = 'dev-store-queue';
    const dir = tempDir('store-queue');
    let client: HoldfastClient | undefined;
    try {
      rig.proxy.holdDownstreamAt('pubrec');
      client = await open({ broker: rig.proxy.url, clientId, cacheDir: dir.path, protocolVersion: 5, timeoutMs: 1000, reconnect: { minMs: 100, maxMs: 300 } });
      const c = client;
      c.publish(`sensors/${clientId}`, reading(clientId, 1, 'x'.repeat(SIZE_LIMIT * 2)));
      for (let n = 2; n <= 6; n++) c.publish(`sensors/${clientId}`, reading(clientId, n));
      await waitUntil(() => rig.proxy.holdingDownstream, 10_000, "the broker's PUBREC for the over-size reading");
      // Drop the link with the PUBREC still held (the held bytes die with the connection), then let the
      // next connection through: MQTT.js resends the over-size reading from its store.
      rig.proxy.reset();
      rig.proxy.holdDownstreamAt(undefined);
      const report = await rig.auditor.waitFor({ [clientId]: range(2, 6) }, SETTLE_MS);
      assert.deepEqual(
        { lost: report.lost, duplicates: report.duplicates, outOfOrder: report.outOfOrder },
        { lost: 0, duplicates: 0, outOfOrder: 0 },
        `the readings behind the refused one arrive; stats ${JSON.stringify(c.stats())}`,
      );
      const letters = await c.deadLetters();
      assert.equal(letters.length, 1, 'the over-size reading is a dead letter');
      for (let n = 7; n <= 9; n++) c.publish(`sensors/${clientId}`, reading(clientId, n));
      await rig.auditor.waitFor({ [clientId]: range(7, 9) }, SETTLE_MS);
      assert.deepEqual(rig.auditor.arrivals(clientId), range(2, 9), 'and sending goes on');
    } finally {
      rig.proxy.holdDownstreamAt(undefined);
      await client?.close();
      dir.remove();
    }
  });

  /**
   * F#3.7. Cache.requeueDeadLetters appends without `isProtected`, and Sender.requeue never reports
   * the eviction: with the cache at its limit, requeueing evicts the reading in flight (which is then
   * delivered anyway), keeps the one that should have gone, and neither counts nor emits anything.
   */
  it('F#3.7: requeue never evicts the reading in flight, and counts and emits what it evicts', { timeout: 60_000 }, async (t) => {
    if (rig.broker.kind !== 'mosquitto') return skipUnlessCI(t, NEEDS_MOSQUITTO);
    const clientId = 'dev-requeue-evict';
    const dir = tempDir('requeue-evict');
    let client: HoldfastClient | undefined;
    try {
      client = await open(clientOptions(clientId, dir.path, { maxCache: { messages: 3 } }));
      const c = client;
      const evicted: number[] = [];
      c.on('evict', (e: { messages: number }) => evicted.push(e.messages));
      c.publish(`restricted/${clientId}`, reading(clientId, 0), { priority: 9 });
      await waitUntil(() => c.stats().deadLettered === 1, 10_000, 'the ACL refusal');
      rig.proxy.holdDownstreamAt('pubcomp');
      for (let n = 1; n <= 3; n++) c.publish(`sensors/${clientId}`, reading(clientId, n));
      await waitUntil(() => rig.proxy.holdingDownstream && c.stats().cached.messages === 3, 10_000, 'reading 1 in flight, 1 to 3 cached (the limit)');
      // One over the limit: reading 2, the oldest unprotected one of the lowest priority, must go.
      assert.equal(await c.requeueDeadLetters(), 1);
      rig.proxy.holdDownstreamAt(undefined);
      assert.equal(await drainOutcome(c, SETTLE_MS), 'drained');
      await rig.auditor.waitFor({ [clientId]: [1, 3] }, 10_000);
      assert.deepEqual(
        { evictEvents: evicted.reduce((a, b) => a + b, 0), evicted: c.stats().evicted, arrivals: rig.auditor.arrivals(clientId) },
        { evictEvents: 1, evicted: 1, arrivals: [1, 3] },
        'reading 2 (not 1, in flight) was evicted, counted and emitted',
      );
    } finally {
      rig.proxy.holdDownstreamAt(undefined);
      await client?.close();
      dir.remove();
    }
  });

  /**
   * F#3.2, reached by a real path: an eviction during requeue. After a restart the recovered PUBREL's
   * PUBCOMP is held; requeueDeadLetters() pushes the cache over maxCache and evicts the recovered
   * reading (F#3.7: requeue protects nothing). When the exchange completes, Sender.onCompleted reads
   * the reading back with readSeqs(), gets [], and #completed([]) reads recs[-1].seq: a TypeError in
   * the outgoing store's microtask kills the worker. The persisted entry is never removed, so the next
   * start resends it (the broker answers PUBCOMP 0x92) and dies the same way.
   */
  it('F#3.2: a recovered packet whose reading requeue evicted completes without killing the worker, on every start', { timeout: 120_000 }, async (t) => {
    if (rig.broker.kind !== 'mosquitto') return skipUnlessCI(t, NEEDS_MOSQUITTO);
    const clientId = 'dev-requeue-recovered';
    const dir = tempDir('requeue-recovered');
    const outcomes: string[] = [];
    try {
      await leaveInFlight(clientId, dir.path, async (client) => {
        client.publish(`restricted/${clientId}`, reading(clientId, 0), { priority: 9 });
        await waitUntil(() => client.stats().deadLettered === 1, 10_000, 'the ACL refusal');
      });
      rig.proxy.holdDownstreamAt('pubcomp');
      const second = await open(clientOptions(clientId, dir.path, { maxCache: { messages: 1 } }));
      try {
        await waitUntil(() => rig.proxy.holdingDownstream, 10_000, "the PUBCOMP for the resent PUBREL");
        assert.equal(await second.requeueDeadLetters(), 1);
        rig.proxy.holdDownstreamAt(undefined);
        outcomes.push(await drainOutcome(second, SETTLE_MS));
      } finally {
        await second.close();
      }
      const third = await open(clientOptions(clientId, dir.path));
      try {
        outcomes.push(await drainOutcome(third, SETTLE_MS));
      } finally {
        await third.close();
      }
      assert.deepEqual(outcomes, ['drained', 'drained'], 'the worker survives both starts');
      await sleep(500); // a late duplicate would arrive now
      assert.deepEqual(rig.auditor.arrivals(clientId), [1], 'reading 1 arrived exactly once');
    } finally {
      rig.proxy.holdDownstreamAt(undefined);
      dir.remove();
    }
  });

  /**
   * F#3.2, from a prepared state: a PUBREL is recorded as in flight while its reading is no longer in
   * `records`. The previous sender produced exactly this in CacheWriter.#retry: a delivered reading
   * whose removal failed (disk full) was removed later without the `alsoInTxn` that deleted the
   * persisted packet, so the packet outlived its reading, and on restart the worker died completing it.
   * Today the PUBREL is recorded in the progress file (worker/progress-file.ts) and a recovered PUBREL
   * never carries records, but the state is still made here with lmdb-js: the reading removed behind
   * the recorded PUBREL's back.
   */
  it('F#3.2: a recovered packet whose reading is gone from the cache (removal retried without its packet) does not kill the worker', { timeout: 90_000 }, async (t) => {
    if (rig.broker.kind !== 'mosquitto') return skipUnlessCI(t, NEEDS_MOSQUITTO);
    const clientId = 'dev-orphan-packet';
    const dir = tempDir('orphan-packet');
    try {
      await leaveInFlight(clientId, dir.path);
      const db = openLmdb({ path: join(dir.path, 'cache.mdb'), maxDbs: 8, noSubdir: true });
      const records = db.openDB<Buffer, Buffer>({ name: 'records', encoding: 'binary', keyEncoding: 'binary' });
      assert.ok(readProgress(dir.path).pubrel !== undefined, 'the PUBREL is recorded as in flight');
      await db.transaction(() => {
        for (const { key } of records.getRange()) records.removeSync(key);
      });
      await db.close();

      const client = await open(clientOptions(clientId, dir.path));
      try {
        assert.equal(await drainOutcome(client, SETTLE_MS), 'drained', 'the worker survives');
      } finally {
        await client.close();
      }
      assert.deepEqual(rig.auditor.arrivals(clientId), [1], 'reading 1 arrived exactly once');
    } finally {
      rig.proxy.holdDownstreamAt(undefined);
      dir.remove();
    }
  });
});
