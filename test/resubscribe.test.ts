/**
 * Subscriptions are sent again only when the broker kept no session (CONNACK Session Present 0). With a
 * persistent session the broker still holds them, and subscribing again would make it send every
 * retained message again on each reconnect.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { open, type IncomingMessage } from 'holdfast';
import { brokerWithProxy, tempDir, waitUntil } from './helpers.js';

const rig = brokerWithProxy({ requireMosquitto: true });

describe('resubscribe', () => {
  it('with a persistent session, a reconnect does not deliver retained messages again', async () => {
    const other = await mqtt.connectAsync(rig.broker.url, { clientId: 'resub-other', protocolVersion: 5 });
    const dir = tempDir('resub');
    const client = await open({ broker: rig.proxy.url, clientId: 'resub-dev', cacheDir: dir.path, reconnect: { minMs: 100, maxMs: 300 }, keepaliveSec: 5 });
    try {
      await other.publishAsync('cmd/resub/config', 'retained-1', { qos: 1, retain: true });
      const got: string[] = [];
      client.subscribe('cmd/resub/#', (msg: IncomingMessage) => got.push(`${msg.topic}=${msg.payload.toString()}`), { qos: 1 });
      await waitUntil(() => got.length === 1, 10_000, 'the retained message');
      for (let i = 1; i <= 3; i++) {
        rig.proxy.reset();
        await waitUntil(() => client.stats().reconnects >= i && client.stats().connected, 10_000, `reconnect ${i}`);
        // A fence on the same connection: anything the broker sent on reconnecting arrives before it.
        client.publish('sensors/resub-dev', String(i));
        await client.drained();
        await other.publishAsync('cmd/resub/fence', String(i), { qos: 1 });
        await waitUntil(() => got.includes(`cmd/resub/fence=${i}`), 10_000, `fence ${i}`);
      }
      assert.deepEqual(got, ['cmd/resub/config=retained-1', 'cmd/resub/fence=1', 'cmd/resub/fence=2', 'cmd/resub/fence=3']);
    } finally {
      await client.close();
      await other.publishAsync('cmd/resub/config', '', { qos: 1, retain: true });
      await other.endAsync();
      dir.remove();
    }
  });
});
