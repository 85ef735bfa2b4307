/**
 * The cheap publish() path must stay correct: byte payloads are copied into shared arenas that go to
 * the worker whole, so every payload must arrive byte for byte, in order, even when the caller reuses
 * its buffer right after publish(), across arena boundaries, and for payloads too big for an arena.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { open } from 'holdfast';
import { startBroker, type Broker } from '@holdfast/testkit';
import { drainOutcome, tempDir, waitUntil } from './helpers.js';

describe('publish() byte payloads', () => {
  let broker: Broker;
  const dir = tempDir('publish-cost');

  before(async () => {
    broker = await startBroker();
  });

  after(async () => {
    await broker?.close();
    dir.remove();
  });

  it('arrive byte for byte and in order though the caller reuses its buffer', async () => {
    // Sizes chosen to fill and overflow the first arenas, plus an empty and two oversized payloads.
    const sizes = [0, 1, 700, 400, 1024, 3000, 5, 300_000, 17, 70_000, 2, 600_000, ...Array.from({ length: 300 }, (_, i) => (i * 37) % 900)];
    const expected = sizes.map((size) => randomBytes(size));
    const received: Buffer[] = [];
    const subscriber = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true });
    await subscriber.subscribeAsync('bytes/#', { qos: 2 });
    subscriber.on('message', (_topic, payload) => received.push(Buffer.from(payload)));
    const client = await open({ broker: broker.url, clientId: 'publish-cost-bytes', cacheDir: dir.path });
    try {
      const scratch = Buffer.alloc(Math.max(...sizes));
      // All in one tick, so they share one batch and its arenas.
      for (const bytes of expected) {
        bytes.copy(scratch);
        client.publish('bytes/test', scratch.subarray(0, bytes.length));
        scratch.fill(0xee);
      }
      const asUint8 = new Uint8Array([1, 2, 3]);
      client.publish('bytes/test', asUint8);
      asUint8.fill(9);
      expected.push(Buffer.from([1, 2, 3]));
      assert.equal(await drainOutcome(client, 20_000), 'drained');
      await waitUntil(() => received.length >= expected.length, 20_000, `${expected.length} payloads at the subscriber`);
      assert.equal(received.length, expected.length);
      received.forEach((got, i) => assert.ok(got.equals(expected[i]!), `payload ${i} (${expected[i]!.length} bytes) differs`));
    } finally {
      await client.close();
      await subscriber.endAsync();
    }
  });
});
