/**
 * Guarantee 5: poison messages don't block the queue. Real Mosquitto refusals: an ACL denial (MQTT 5
 * PUBREC 0x87), `message_size_limit` (Mosquitto 2.0 answers with a PUBREC reason code MQTT.js cannot
 * parse) and `max_packet_size` (announced in CONNACK). The refused message moves to the dead-letter
 * store with its reason, everything behind it is delivered in order, and it can be listed and requeued.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { open, type HoldfastClient } from 'holdfast';
import { startAuditor, startBroker, type Broker } from '@holdfast/testkit';
import { extractReadingNumber, skipUnlessCI, tempDir, waitUntil } from './helpers.js';

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const reading = (device: string, n: number): string => JSON.stringify({ device, n });

interface Setup {
  broker: Broker;
  client: HoldfastClient;
  done(): Promise<void>;
}

async function setup(clientId: string, extraConfig: (dir: string) => string[]): Promise<Setup | undefined> {
  const dir = tempDir('dead');
  const broker = await startBroker({ extraConfig: extraConfig(dir.path) });
  if (broker.kind !== 'mosquitto') {
    await broker.close();
    dir.remove();
    return undefined;
  }
  const client = await open({ broker: broker.url, clientId, cacheDir: join(dir.path, 'cache'), timeoutMs: 1000 });
  return {
    broker,
    client,
    async done() {
      await client.close();
      await broker.close();
      dir.remove();
    },
  };
}

/** One QoS 1 PUBLISH by a separate MQTT 5 client: true if the broker accepted it, false if it refused it (an ACL). */
async function brokerAllows(url: string, topic: string): Promise<boolean> {
  const probe = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  try {
    return await probe.publishAsync(topic, 'probe', { qos: 1 }).then(
      () => true,
      () => false,
    );
  } finally {
    await probe.endAsync();
  }
}

describe('dead letters', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('an ACL refusal goes to the dead-letter store and the queue goes on; requeue sends it once allowed', async (t) => {
    let aclPath = '';
    const s = await setup('dev-acl', (dir) => {
      aclPath = join(dir, 'acl');
      writeFileSync(aclPath, 'topic readwrite sensors/#\n', { mode: 0o644 });
      return [`acl_file ${aclPath}`];
    });
    if (!s) return skipUnlessCI(t, 'needs mosquitto (ACLs)');
    cleanups.push(s.done);
    const auditor = await startAuditor({ url: s.broker.url, topics: ['sensors/#', 'restricted/#'], extract: extractReadingNumber });
    cleanups.push(() => auditor.close());

    for (let n = 1; n <= 5; n++) s.client.publish('sensors/dev-acl', reading('dev-acl', n));
    const poisonSeq = s.client.publish('restricted/dev-acl', reading('dev-acl-restricted', 1), { priority: 8 });
    for (let n = 6; n <= 10; n++) s.client.publish('sensors/dev-acl', reading('dev-acl', n));
    await s.client.drained();

    const report = await auditor.waitFor({ 'dev-acl': range(1, 10) }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    assert.equal(s.client.stats().deadLettered, 1);
    assert.equal(s.client.stats().delivered, 10);
    const dead = await s.client.deadLetters();
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.seq, poisonSeq);
    assert.equal(dead[0]!.topic, 'restricted/dev-acl');
    assert.equal(dead[0]!.priority, 8);
    assert.match(dead[0]!.reason, /Not authorized/);
    assert.equal(dead[0]!.payload.toString(), reading('dev-acl-restricted', 1));

    // Allow the topic, have mosquitto reload its ACL, and send the dead letter again.
    assert.equal(await brokerAllows(s.broker.url, 'restricted/probe'), false, 'the probe is refused before the reload');
    writeFileSync(aclPath, 'topic readwrite sensors/#\ntopic readwrite restricted/#\n');
    process.kill(s.broker.pid!, 'SIGHUP');
    await waitUntil(() => brokerAllows(s.broker.url, 'restricted/probe'), 10_000, 'mosquitto to reload its ACL');
    assert.equal(await s.client.requeueDeadLetters(), 1);
    await s.client.drained();
    await auditor.waitFor({ 'dev-acl-restricted': [1] }, 10_000);
    assert.equal((await s.client.deadLetters()).length, 0);
    assert.equal(s.client.stats().deadLettered, 0);
  });

  it('an over-size message refused with an unparseable reason code does not block the queue', async (t) => {
    const s = await setup('dev-big', () => ['message_size_limit 2000']);
    if (!s) return skipUnlessCI(t, 'needs mosquitto (message_size_limit)');
    cleanups.push(s.done);
    const auditor = await startAuditor({ url: s.broker.url, topics: 'sensors/#', extract: extractReadingNumber });
    cleanups.push(() => auditor.close());

    s.client.publish('sensors/dev-big', reading('dev-big', 1));
    s.client.publish('sensors/dev-big', JSON.stringify({ device: 'dev-big-huge', n: 1, pad: 'x'.repeat(5000) }));
    for (let n = 2; n <= 5; n++) s.client.publish('sensors/dev-big', reading('dev-big', n));
    await s.client.drained();
    const report = await auditor.waitFor({ 'dev-big': range(1, 5) }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    const dead = await s.client.deadLetters();
    assert.equal(dead.length, 1);
    // Refused at the acknowledgement, not after deadLetterAfterDisconnects drops (whose reason also
    // quotes the parse error, so a looser match passed with the unparseable refusal ignored).
    assert.match(dead[0]!.reason, /^refused by the broker with an unparseable reason code/);
    assert.equal(auditor.arrivals('dev-big-huge').length, 0);
  });

  it("a message over the broker's announced maximum packet size is dead-lettered without being sent", async (t) => {
    const s = await setup('dev-max', () => ['max_packet_size 3000']);
    if (!s) return skipUnlessCI(t, 'needs mosquitto (max_packet_size)');
    cleanups.push(s.done);
    const auditor = await startAuditor({ url: s.broker.url, topics: 'sensors/#', extract: extractReadingNumber });
    cleanups.push(() => auditor.close());
    // Connected means CONNACK, which carried the limit.
    await waitUntil(() => s.client.stats().connected, 10_000, 'the client to connect and learn the limit');

    s.client.publish('sensors/dev-max', reading('dev-max', 1));
    s.client.publish('sensors/dev-max', JSON.stringify({ device: 'dev-max-huge', n: 1, pad: 'x'.repeat(10_000) }));
    s.client.publish('sensors/dev-max', reading('dev-max', 2));
    await s.client.drained();
    const report = await auditor.waitFor({ 'dev-max': [1, 2] }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    const dead = await s.client.deadLetters();
    assert.equal(dead.length, 1);
    assert.match(dead[0]!.reason, /maximum packet size/);
    assert.equal(s.client.stats().networkDisconnects, 0, 'the broker never had to disconnect us');
  });

  it('PUBACK 0x10 (no matching subscribers) is success: delivered, never dead-lettered', async (t) => {
    const s = await setup('dev-nosub', () => []);
    if (!s) return skipUnlessCI(t, 'needs mosquitto (it answers a QoS 1 PUBLISH nobody subscribed to with 0x10)');
    cleanups.push(s.done);
    // Mosquitto 2.0 sends 0x10 in a PUBACK only (its PUBREC says 0x00), so these readings are QoS 1.
    for (let n = 1; n <= 3; n++) s.client.publish('unwatched/dev-nosub', reading('dev-nosub', n), { qos: 1, retain: true });
    await s.client.drained();
    assert.equal((await s.client.deadLetters()).length, 0);
    assert.deepEqual([s.client.stats().delivered, s.client.stats().deadLettered], [3, 0]);
    // The broker kept them: the retained message is the last reading.
    const late = await mqtt.connectAsync(s.broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
    try {
      const retained = new Promise<string>((resolve) => late.once('message', (_topic, payload) => resolve(payload.toString())));
      await late.subscribeAsync('unwatched/#', { qos: 1 });
      assert.equal(await retained, reading('dev-nosub', 3));
    } finally {
      await late.endAsync();
    }
  });
});
