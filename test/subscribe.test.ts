/**
 * subscribe()/unsubscribe() against a real Mosquitto: filters validated per the MQTT spec, handlers on
 * the app thread, a throwing handler isolated, subscriptions made before the first connection, across
 * reconnects, and offline delivery through the persistent session.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { open, topicMatches, ErrorCodes, HoldfastError, type HoldfastClient, type IncomingMessage } from 'holdfast';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { sleep, tempDir } from './helpers.js';

let broker: Broker;
let proxy: LinkProxy;
let sender: mqtt.MqttClient;
let protocolVersion: 4 | 5;

before(async () => {
  broker = await startBroker();
  proxy = await startLinkProxy({ targetPort: broker.port });
  protocolVersion = broker.protocolVersions.includes(5) ? 5 : 4;
  sender = await mqtt.connectAsync(broker.url, { protocolVersion });
});
after(async () => {
  await sender.endAsync();
  await proxy.close();
  await broker.close();
});

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function connected(client: HoldfastClient): Promise<void> {
  await waitFor(() => client.stats().connected, 10_000, 'the client to connect');
  await sleep(200); // the SUBSCRIBE goes out right after CONNACK
}

describe('subscribe', () => {
  it('validates filters per the MQTT spec', async () => {
    const dir = tempDir('sub-valid');
    const client = await open({ broker: 'mqtt://127.0.0.1:1', clientId: 'dev-sub-valid', cacheDir: dir.path });
    try {
      for (const bad of ['', 'a/#/b', 'a/b#', 'a+/b', 'a/+b', 'a\u0000b']) {
        assert.throws(() => client.subscribe(bad, () => undefined), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_TOPIC, bad);
      }
      assert.throws(() => client.subscribe('a/b', 'nope' as never), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_ARGUMENT);
      assert.throws(() => client.subscribe('a/b', () => undefined, { qos: 3 as 2 }), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_QOS);
      for (const good of ['#', '+', 'a/+/c', 'a/#', '+/+/#', 'devices/dev-1/cmd/#']) client.subscribe(good, () => undefined);
    } finally {
      await client.close();
      dir.remove();
    }
  });

  it('matches topics like a broker', () => {
    assert.ok(topicMatches('a/+/c', 'a/b/c'));
    assert.ok(topicMatches('a/#', 'a'));
    assert.ok(topicMatches('a/#', 'a/b/c'));
    assert.ok(!topicMatches('a/+', 'a/b/c'));
    assert.ok(!topicMatches('#', '$SYS/broker/uptime'), 'wildcards do not match $ topics');
    assert.ok(topicMatches('$SYS/#', '$SYS/broker/uptime'));
  });

  it('a subscription made before the first connection works, survives a reconnect, and gets what was sent while offline', async () => {
    const dir = tempDir('sub-life');
    await proxy.refuse(true);
    const client = await open({ broker: proxy.url, clientId: 'dev-sub', cacheDir: dir.path, protocolVersion, reconnect: { minMs: 100, maxMs: 300 } });
    const got: IncomingMessage[] = [];
    const errors: HoldfastError[] = [];
    client.on('error', (err: HoldfastError) => errors.push(err));
    try {
      client.subscribe('devices/dev-sub/cmd/#', () => {
        throw new Error('a buggy handler');
      });
      client.subscribe('devices/dev-sub/+/reboot', (m) => got.push(m), { qos: 1 });
      await proxy.refuse(false);
      await connected(client);

      await sender.publishAsync('devices/dev-sub/cmd/reboot', 'now', { qos: 1 });
      await waitFor(() => got.length >= 1, 5000, 'the first command');
      await sleep(300);
      assert.equal(got.length, protocolVersion === 5 ? 1 : 2, 'MQTT 5: each handler sees a message once, though two subscriptions match');
      assert.equal(got[0]!.topic, 'devices/dev-sub/cmd/reboot');
      assert.equal(got[0]!.payload.toString(), 'now');
      assert.equal(got[0]!.qos, 1);
      assert.equal(got[0]!.retain, false);
      await waitFor(() => errors.length === 1, 2000, 'the handler error');
      assert.equal(errors[0]!.code, ErrorCodes.HANDLER_FAILED, 'the throwing handler is isolated and reported');

      // Offline: the broker keeps what is sent to the persistent session.
      await proxy.refuse(true);
      await waitFor(() => !client.stats().connected, 5000, 'the disconnect');
      await sender.publishAsync('devices/dev-sub/cmd/reboot', 'while offline', { qos: 1 });
      await proxy.refuse(false);
      const before = got.length;
      await waitFor(() => got.length > before, 10_000, 'the command sent while offline');
      assert.equal(got.at(-1)!.payload.toString(), 'while offline');

      await sleep(300);
      const beforeUnsubscribe = got.length;
      client.unsubscribe('devices/dev-sub/+/reboot');
      await sleep(300);
      await sender.publishAsync('devices/dev-sub/cmd/reboot', 'after unsubscribe', { qos: 1 });
      await sleep(500);
      assert.equal(got.length, beforeUnsubscribe, 'no delivery after unsubscribe');
    } finally {
      await client.close();
      await proxy.refuse(false);
      dir.remove();
    }
  });

  it('without a persistent session, subscriptions are sent again on every reconnect', async () => {
    const dir = tempDir('sub-clean');
    const client = await open({ broker: proxy.url, clientId: 'dev-sub-clean', cacheDir: dir.path, protocolVersion, session: { clean: true }, reconnect: { minMs: 100, maxMs: 300 } });
    const got: string[] = [];
    try {
      client.subscribe('devices/dev-sub-clean/cmd', (m) => got.push(m.payload.toString()));
      await connected(client);
      proxy.reset();
      await waitFor(() => client.stats().reconnects >= 1 && client.stats().connected, 10_000, 'the reconnect');
      await sleep(300);
      await sender.publishAsync('devices/dev-sub-clean/cmd', 'after reconnect', { qos: 1 });
      await waitFor(() => got.length === 1, 5000, 'a message after the reconnect');
    } finally {
      await client.close();
      dir.remove();
    }
  });
});
