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
import { tempDir, waitUntil } from './helpers.js';

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

/**
 * Publishes `probe` messages on `topic` until one reaches the client (`arrived` sees its payload):
 * proof that the subscription is live at the broker, without guessing how long the SUBSCRIBE takes.
 */
let probes = 0;
async function subscriptionLive(topic: string, arrived: (payload: string) => boolean): Promise<void> {
  await waitUntil(
    async () => {
      // Unique across the file: a probe that arrived for an earlier wait must not satisfy this one.
      const payload = `probe-${++probes}`;
      await sender.publishAsync(topic, payload, { qos: 1 });
      return withinMs(() => arrived(payload), 500);
    },
    10_000,
    `a probe on ${topic} to arrive`,
  );
}

/** Whether `condition` holds within `ms`. */
async function withinMs(condition: () => boolean, ms: number): Promise<boolean> {
  return waitUntil(condition, ms).then(
    () => true,
    () => false,
  );
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
      await waitUntil(() => client.stats().connected, 10_000, 'the client to connect');
      // A topic only the second filter matches: once a probe gets through, both SUBSCRIBEs are in.
      await subscriptionLive('devices/dev-sub/probe/reboot', (p) => got.some((m) => m.payload.toString() === p));
      const commands = (): IncomingMessage[] => got.filter((m) => m.topic === 'devices/dev-sub/cmd/reboot');

      await sender.publishAsync('devices/dev-sub/cmd/reboot', 'now', { qos: 1 });
      await waitUntil(() => commands().length >= 1, 5000, 'the first command');
      // Everything sent before the fence has arrived once the fence has: a second copy would be in.
      await subscriptionLive('devices/dev-sub/fence/reboot', (p) => got.some((m) => m.payload.toString() === p));
      assert.equal(commands().length, protocolVersion === 5 ? 1 : 2, 'MQTT 5: each handler sees a message once, though two subscriptions match');
      const first = commands()[0]!;
      assert.equal(first.payload.toString(), 'now');
      assert.equal(first.qos, 1);
      assert.equal(first.retain, false);
      await waitUntil(() => errors.length >= 1, 2000, 'the handler error');
      assert.equal(errors[0]!.code, ErrorCodes.HANDLER_FAILED, 'the throwing handler is isolated and reported');

      // Offline: the broker keeps what is sent to the persistent session.
      await proxy.refuse(true);
      await waitUntil(() => !client.stats().connected, 5000, 'the disconnect');
      await sender.publishAsync('devices/dev-sub/cmd/reboot', 'while offline', { qos: 1 });
      await proxy.refuse(false);
      await waitUntil(() => commands().some((m) => m.payload.toString() === 'while offline'), 10_000, 'the command sent while offline');

      // After unsubscribe, the throwing cmd/# handler still gets every command: each one it reports
      // has been delivered, so a command it reports that did not reach the +/reboot handler shows
      // the UNSUBSCRIBE took effect; from then on nothing may reach that handler.
      client.unsubscribe('devices/dev-sub/+/reboot');
      let k = 0;
      await waitUntil(
        async () => {
          const payload = `after unsubscribe ${++k}`;
          const reported = errors.length;
          await sender.publishAsync('devices/dev-sub/cmd/reboot', payload, { qos: 1 });
          await waitUntil(() => errors.length > reported, 5000, 'the cmd/# handler to get the command');
          // In MQTT 3.1.1 the broker sends one copy per matching filter; the fence orders them.
          await subscriptionLive('devices/dev-sub/cmd/fence', () => errors.length > reported + 1);
          return !got.some((m) => m.payload.toString() === payload);
        },
        10_000,
        'a command that no longer reaches the unsubscribed handler',
      );
      const afterUnsubscribe = got.length;
      await sender.publishAsync('devices/dev-sub/cmd/reboot', 'late', { qos: 1 });
      const reported = errors.length;
      await subscriptionLive('devices/dev-sub/cmd/fence', () => errors.length > reported + 1);
      assert.equal(got.length, afterUnsubscribe, 'no delivery after unsubscribe');
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
      await waitUntil(() => client.stats().connected, 10_000, 'the client to connect');
      await subscriptionLive('devices/dev-sub-clean/cmd', (p) => got.includes(p));
      proxy.reset();
      await waitUntil(() => client.stats().reconnects >= 1 && client.stats().connected, 10_000, 'the reconnect');
      // A clean session starts with no subscriptions: only a SUBSCRIBE sent again lets this through.
      await subscriptionLive('devices/dev-sub-clean/cmd', (p) => got.includes(p));
    } finally {
      await client.close();
      dir.remove();
    }
  });
});
