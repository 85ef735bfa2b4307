/**
 * Guarantee 9: it never wedges. Faults nobody scripted in the guarantees table, each against a real
 * Mosquitto through the testkit's proxy: a PUBREC or a PUBCOMP lost while the connection and its pings
 * stay up (the watchdog reconnects and resends; MQTT allows no other resend), a message that makes the
 * broker drop the connection every time it is sent (dead-lettered after deadLetterAfterDisconnects), a
 * PUBCOMP 0x92 for a PUBREL resent after a reconnect (success, not a refusal), a bulk bigger than the
 * broker's Maximum Packet Size (split, never dead-lettered whole), an over-size message published while
 * offline (refused from the last CONNACK without being sent), and an outage detected at once (spill mode
 * writes the pending stream when the link drops, not timeoutMs later).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open, unpackBulk, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { startAuditor, startBroker, startLinkProxy, type AuditMessage, type Auditor, type Broker, type LinkProxy, type Reading } from '@holdfast/testkit';
import { extractReadingNumber, tempDir, waitUntil } from './helpers.js';

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const reading = (device: string, n: number, pad = 0): string => JSON.stringify({ device, n, pad: 'x'.repeat(pad) });

interface Rig {
  broker: Broker;
  proxy: LinkProxy;
  auditor: Auditor;
  /** Sizes of the bulk messages that arrived. */
  bulkSizes: number[];
}

function rigWith(extraConfig: string[] = []): Rig {
  const rig = { bulkSizes: [] as number[] } as Rig;
  const extract = (msg: AuditMessage): Reading[] => {
    if (!msg.topic.startsWith('holdfast/bulk/')) return extractReadingNumber(msg);
    rig.bulkSizes.push(msg.payload.byteLength);
    return unpackBulk(msg.payload).flatMap((r) => extractReadingNumber({ topic: r.topic, payload: r.payload }));
  };
  before(async () => {
    rig.broker = await startBroker({ extraConfig, requireMosquitto: true });
    rig.proxy = await startLinkProxy({ targetPort: rig.broker.port });
    rig.auditor = await startAuditor({ url: rig.broker.url, topics: ['sensors/#', 'holdfast/bulk/#'], extract });
  });
  after(async () => {
    await rig.auditor?.close();
    await rig.proxy?.close();
    await rig.broker?.close();
  });
  return rig;
}

async function withClient(rig: Rig, clientId: string, extra: Partial<HoldfastOptions>, body: (client: HoldfastClient, events: Array<[string, unknown]>) => Promise<void>): Promise<void> {
  const dir = tempDir('liveness');
  const client = await open({
    broker: rig.proxy.url,
    clientId,
    cacheDir: join(dir.path, 'cache'),
    timeoutMs: 500,
    reconnect: { minMs: 100, maxMs: 300 },
    keepaliveSec: 1,
    connectTimeoutMs: 2000,
    ...extra,
  });
  const events: Array<[string, unknown]> = [];
  for (const name of ['watchdog', 'dead-letter', 'spill', 'disconnect']) client.on(name, (data: unknown) => events.push([name, data]));
  try {
    await waitUntil(() => client.stats().connected, 10_000, 'the client to connect');
    await body(client, events);
  } finally {
    await client.close().catch(() => undefined);
    dir.remove();
  }
}

async function publishRange(client: HoldfastClient, device: string, from: number, to: number, perTickMs = 5): Promise<void> {
  for (let n = from; n <= to; n++) {
    client.publish(`sensors/${device}`, reading(device, n));
    await new Promise((r) => setTimeout(r, perTickMs));
  }
}

describe('liveness: a lost acknowledgement never wedges the queue', () => {
  const rig = rigWith();

  for (const lost of ['pubrec', 'pubcomp'] as const) {
    it(`a ${lost.toUpperCase()} lost on a live connection: the watchdog reconnects, everything arrives once, in order`, async () => {
      await withClient(rig, `dev-lost-${lost}`, { watchdogMs: 1500 }, async (client, events) => {
        const device = `dev-lost-${lost}`;
        await publishRange(client, device, 1, 20);
        await client.drained();
        const fault = rig.proxy.dropPackets('to-client', lost, 1);
        await publishRange(client, device, 21, 200);
        await waitUntil(() => fault.applied === 1, 10_000, `a ${lost} to be dropped`);
        await client.drained();
        const report = await rig.auditor.waitFor({ [device]: range(1, 200) }, 20_000);
        assert.deepEqual([report.devices[device]!.lost, report.devices[device]!.duplicates, report.devices[device]!.outOfOrder], [0, 0, 0]);
        assert.ok(events.some(([name]) => name === 'watchdog'), 'the watchdog fired');
        // A PUBCOMP lost after the broker completed: the PUBREL resent on the new connection is
        // answered with 0x92 (packet identifier not found). That is success, never a dead letter.
        assert.equal(client.stats().deadLettered, 0, `dead letters: ${JSON.stringify(events.filter(([n]) => n === 'dead-letter'))}`);
        assert.deepEqual(await client.deadLetters(), []);
      });
    });
  }
});

describe('liveness: a message that makes the broker drop the connection', () => {
  const rig = rigWith();

  it('goes to the dead letters after deadLetterAfterDisconnects drops in a row, and the queue goes on', async () => {
    const device = 'dev-poison-drop';
    await withClient(rig, device, { deadLetterAfterDisconnects: 3 }, async (client) => {
      rig.proxy.disconnectOnTopic('sensors/forbidden/#');
      try {
        await publishRange(client, device, 1, 10);
        const poison = client.publish('sensors/forbidden/x', reading(device, 999));
        await publishRange(client, device, 11, 30);
        await waitUntil(() => client.stats().deadLettered === 1, 30_000, 'the poison message to be dead-lettered');
        await client.drained();
        const letters = await client.deadLetters();
        assert.deepEqual(letters.map((l) => l.seq), [poison]);
        assert.match(letters[0]!.reason, /closed the connection 3 times in a row/);
        const report = await rig.auditor.waitFor({ [device]: range(1, 30) }, 20_000);
        assert.deepEqual([report.devices[device]!.lost, report.devices[device]!.duplicates, report.devices[device]!.outOfOrder], [0, 0, 0]);
      } finally {
        rig.proxy.disconnectOnTopic(undefined);
      }
    });
  });
});

describe('liveness: the broker maximum packet size', () => {
  const rig = rigWith(['max_packet_size 2000']);

  it('a bulk bigger than the maximum packet size is split to fit, never dead-lettered whole', async () => {
    const device = 'dev-bulk-split';
    await withClient(rig, device, { bulk: { maxMessages: 500, maxBytes: 1 << 20 } }, async (client) => {
      await rig.proxy.refuse(true);
      await waitUntil(() => !client.stats().connected, 10_000, 'the link to drop');
      for (let n = 1; n <= 200; n++) client.publish(`sensors/${device}`, reading(device, n, 100));
      await client.flush();
      assert.equal(client.stats().cached.messages, 200);
      await rig.proxy.refuse(false);
      await client.drained();
      assert.equal(client.stats().deadLettered, 0);
      const report = await rig.auditor.waitFor({ [device]: range(1, 200) }, 20_000);
      // 200 readings of ~130 bytes in bulks below 2000 bytes: more than ten, each under the limit.
      assert.ok(rig.bulkSizes.length > 10, `bulks: ${rig.bulkSizes.join(', ')}`);
      assert.ok(rig.bulkSizes.every((size) => size < 2000), `bulks: ${rig.bulkSizes.join(', ')}`);
      assert.deepEqual([report.devices[device]!.lost, report.devices[device]!.duplicates, report.devices[device]!.outOfOrder], [0, 0, 0]);
    });
  });

  it('an over-size message published while offline is refused from the last CONNACK, without being sent', async () => {
    const device = 'dev-big-offline';
    await withClient(rig, device, {}, async (client) => {
      await publishRange(client, device, 1, 5);
      await client.drained();
      await rig.proxy.refuse(true);
      await waitUntil(() => !client.stats().connected, 10_000, 'the link to drop');
      const big = client.publish(`sensors/${device}`, reading(device, 999, 5000));
      for (let n = 6; n <= 20; n++) client.publish(`sensors/${device}`, reading(device, n));
      const attemptsBefore = rig.proxy.attempts.length;
      await rig.proxy.refuse(false);
      await client.drained();
      const letters = await client.deadLetters();
      assert.deepEqual(letters.map((l) => l.seq), [big]);
      assert.match(letters[0]!.reason, /maximum packet size \(2000\)/);
      // Sending it would have made Mosquitto drop the connection: one connection did it all.
      assert.equal(rig.proxy.attempts.length - attemptsBefore, 1);
      const report = await rig.auditor.waitFor({ [device]: range(1, 20) }, 20_000);
      assert.deepEqual([report.devices[device]!.lost, report.devices[device]!.duplicates, report.devices[device]!.outOfOrder], [0, 0, 0]);
    });
  });
});

describe('liveness: an outage the client can see', () => {
  const rig = rigWith();

  it('spill mode writes the pending stream to the cache as soon as the link drops, not timeoutMs later', async () => {
    const device = 'dev-spill-now';
    await withClient(rig, device, { timeoutMs: 60_000, watchdogMs: 120_000 }, async (client, events) => {
      rig.proxy.stall(true);
      for (let n = 1; n <= 50; n++) client.publish(`sensors/${device}`, reading(device, n));
      await waitUntil(() => client.stats().memoryQueued + client.stats().inflight === 50, 5000, 'the readings to queue');
      rig.proxy.reset();
      rig.proxy.stall(false);
      // Far below timeoutMs (60 s): the drop itself is the signal.
      await waitUntil(() => client.stats().cached.messages === 50, 10_000, 'the pending stream to reach the cache');
      assert.ok(events.some(([name, data]) => name === 'spill' && (data as { reason: string }).reason === 'link-down'));
      await client.drained();
      const report = await rig.auditor.waitFor({ [device]: range(1, 50) }, 20_000);
      assert.deepEqual([report.devices[device]!.lost, report.devices[device]!.duplicates, report.devices[device]!.outOfOrder], [0, 0, 0]);
    });
  });
});
