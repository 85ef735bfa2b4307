/**
 * The `holdfast-id` user property (`<clientId>/<seq>`): parseMessageId() reads exactly what the worker
 * writes, for any clientId, and rejects anything else; on the wire, a real Mosquitto subscriber sees
 * one such property per message, naming the seq publish() returned, also on a PUBLISH that MQTT.js
 * resends from the outgoing store after the link drops or the client restarts (publish() itself never
 * gets the property).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import mqtt from 'mqtt';
import { MESSAGE_ID_PROPERTY, open, parseMessageId, type HoldfastClient } from 'holdfast';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
// formatMessageId is the worker's half and not public API: the built module is imported by path.
import { formatMessageId } from '../packages/holdfast/dist/message-id.js';
import { tempDir, waitUntil } from './helpers.js';

it('parseMessageId reads back whatever formatMessageId writes, for any clientId (even with slashes)', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1 }), fc.maxSafeNat(), (clientId, seq) => {
      assert.deepEqual(parseMessageId(formatMessageId(clientId, seq)), { clientId, seq });
    }),
    { numRuns: 2000 },
  );
});

it('parseMessageId: the first of a repeated property wins; anything that is not an id is undefined', () => {
  assert.deepEqual(parseMessageId(['dev/7', 'other/8']), { clientId: 'dev', seq: 7 });
  for (const bad of [undefined, null, 42, {}, [], '', 'dev', '/7', 'dev/', 'dev/-1', 'dev/1.5', 'dev/0x10', 'dev/ 7', 'dev/99999999999999999']) {
    assert.equal(parseMessageId(bad), undefined, `${JSON.stringify(bad)} is not an id`);
  }
  fc.assert(fc.property(fc.anything(), (value) => {
    const id = parseMessageId(value);
    if (id !== undefined) assert.ok(Number.isSafeInteger(id.seq) && id.clientId.length > 0);
  }));
});

let broker: Broker;
before(async () => {
  broker = await startBroker();
});
after(async () => {
  await broker.close();
});

/** A Mosquitto subscriber on `root/#` that records each message's payload and user properties. */
async function recordingSubscriber(root: string) {
  const subscriber = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true, clientId: `message-id-${root}-sub` });
  const seen: { payload: string; properties: Record<string, unknown> }[] = [];
  subscriber.on('message', (_topic, payload, packet) => seen.push({ payload: payload.toString(), properties: { ...packet.properties?.userProperties } }));
  await subscriber.subscribeAsync(`${root}/#`, { qos: 2 });
  return { seen, end: () => subscriber.endAsync() };
}

/**
 * Publishes one message whose PUBREC the link loses: Mosquitto releases a QoS 2 message on PUBREL,
 * which never comes, so the broker has not delivered it. Returns its seq once the PUBREC is held.
 */
async function publishWithPubrecLost(client: HoldfastClient, proxy: LinkProxy, topic: string, payload: string): Promise<number> {
  await waitUntil(() => client.stats().connected, 10_000, 'the client to connect');
  proxy.holdDownstreamAt('pubrec');
  const seq = client.publish(topic, payload);
  await waitUntil(() => proxy.holdingDownstream, 10_000, 'the PUBREC to be held');
  return seq;
}

it('every message carries one holdfast-id naming the seq publish() returned', async () => {
  const dir = tempDir('message-id');
  const { seen, end } = await recordingSubscriber('ids');
  const client = await open({ broker: broker.url, clientId: 'plant/7/pump', cacheDir: dir.path, session: { clean: true } });
  try {
    // Not JSON, so nothing but the property can name the reading.
    const seqs = ['a', 'b', 'c'].map((payload) => client.publish('ids/x', payload));
    await client.drained();
    await waitUntil(() => seen.length === 3, 10_000, 'the subscriber to get all three');
    assert.deepEqual(
      seen.map((m) => m.properties),
      seqs.map((seq) => ({ [MESSAGE_ID_PROPERTY]: `plant/7/pump/${seq}` })),
    );
    assert.deepEqual(seen.map((m) => parseMessageId(m.properties[MESSAGE_ID_PROPERTY])?.seq), seqs);
  } finally {
    await client.close();
    await end();
    dir.remove();
  }
});

it('a PUBLISH resent from the outgoing store after a lost PUBREC carries the same holdfast-id', async () => {
  const dir = tempDir('message-id-resend');
  const proxy = await startLinkProxy({ targetPort: broker.port });
  const { seen, end } = await recordingSubscriber('resend');
  const client = await open({ broker: proxy.url, clientId: 'dev-resend', cacheDir: dir.path, session: { clean: true }, reconnect: { minMs: 50, maxMs: 100 } });
  try {
    const seq = await publishWithPubrecLost(client, proxy, 'resend/x', 'r1');
    proxy.reset();
    proxy.holdDownstreamAt(undefined);
    // With a clean session the broker forgot the first attempt, so what the subscriber gets is the resend.
    await client.drained();
    await waitUntil(() => seen.length === 1, 10_000, 'the subscriber to get the resent message');
    assert.ok(proxy.attempts.length >= 2, 'the message went out again on a new connection');
    assert.deepEqual(seen, [{ payload: 'r1', properties: { [MESSAGE_ID_PROPERTY]: `dev-resend/${seq}` } }]);
  } finally {
    await client.close();
    await end();
    await proxy.close();
    dir.remove();
  }
});

it('a PUBLISH left in flight at close() is resent after a restart with the same holdfast-id', async () => {
  const dir = tempDir('message-id-restart');
  const proxy = await startLinkProxy({ targetPort: broker.port });
  const { seen, end } = await recordingSubscriber('restart');
  const first = await open({ broker: proxy.url, clientId: 'dev-restart', cacheDir: dir.path, session: { clean: true }, closeTimeoutMs: 1000 });
  let second: HoldfastClient | undefined;
  try {
    const seq = await publishWithPubrecLost(first, proxy, 'restart/x', 'r1');
    // close() persists the exchange still in flight; the next run resends it from LMDB.
    await first.close();
    proxy.holdDownstreamAt(undefined);
    second = await open({ broker: broker.url, clientId: 'dev-restart', cacheDir: dir.path, session: { clean: true } });
    await second.drained();
    await waitUntil(() => seen.length === 1, 10_000, 'the subscriber to get the resent message');
    assert.deepEqual(seen, [{ payload: 'r1', properties: { [MESSAGE_ID_PROPERTY]: `dev-restart/${seq}` } }]);
  } finally {
    await first.close().catch(() => undefined);
    await second?.close();
    await end();
    await proxy.close();
    dir.remove();
  }
});
