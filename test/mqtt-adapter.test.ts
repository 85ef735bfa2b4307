/**
 * The MQTT.js and Node behaviours holdfast relies on beyond their public contracts, one test each,
 * numbered as in packages/holdfast/src/worker/link.ts, so an upgrade that changes one fails here
 * rather than as a wedge in the field. Against a real Mosquitto unless the behaviour is Node's own.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import mqtt, { type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
import { startBroker } from '@holdfast/testkit';
import { brokerWithProxy, waitUntil } from './helpers.js';

const rig = brokerWithProxy({ requireMosquitto: true });

async function connect(url: string, clientId: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId, protocolVersion: 5, reconnectPeriod: 0, clean: false, properties: { sessionExpiryInterval: 60 }, ...extra });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

const end = (client: MqttClient): Promise<void> => new Promise((resolve) => client.end(true, () => resolve()));

describe('MQTT.js and Node internals holdfast relies on (worker/link.ts)', () => {
  it("1. net.Socket's _writev receives every corked chunk, so one write can carry a whole packet", async () => {
    const received: Buffer[] = [];
    const server = net.createServer((socket) => socket.on('data', (chunk) => received.push(chunk)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const proto = Object.getPrototypeOf(socket) as { _writev?: unknown };
    assert.equal(typeof proto._writev, 'function', 'net.Socket implements _writev');
    const seen: number[] = [];
    const original = (socket as unknown as { _writev: (chunks: unknown[], cb: () => void) => void })._writev;
    (socket as unknown as { _writev: (chunks: unknown[], cb: () => void) => void })._writev = function (chunks, cb) {
      seen.push(chunks.length);
      return original.call(this, chunks, cb);
    };
    socket.cork();
    socket.write(Buffer.from('ab'));
    socket.write('cd');
    socket.write(Buffer.from('ef'));
    process.nextTick(() => socket.uncork());
    await waitUntil(() => Buffer.concat(received).toString() === 'abcdef', 5000, 'the bytes to arrive');
    assert.deepEqual(seen, [3]);
    socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it("2. 'packetsend' is emitted synchronously with the very packet object MQTT.js then encodes", async () => {
    const sub = await connect(rig.broker.url, 'adapter-sub-2');
    const pub = await connect(rig.broker.url, 'adapter-pub-2');
    try {
      await sub.subscribeAsync('adapter/2', { qos: 2 });
      const got = new Promise<IPublishPacket>((resolve) => sub.on('message', (_t, _p, packet) => resolve(packet)));
      pub.on('packetsend', (packet: Packet) => {
        if (packet.cmd === 'publish') (packet as IPublishPacket).properties = { userProperties: { stamped: 'yes' } };
      });
      await pub.publishAsync('adapter/2', 'x', { qos: 2 });
      const packet = await got;
      assert.equal(packet.properties?.userProperties?.stamped, 'yes');
    } finally {
      await end(pub);
      await end(sub);
    }
  });

  it("3. 'packetreceive' is emitted for an acknowledgement before MQTT.js handles it", async () => {
    const pub = await connect(rig.broker.url, 'adapter-pub-3');
    try {
      let pendingAtReceive: boolean | undefined;
      pub.on('packetreceive', (packet: Packet) => {
        if (packet.cmd === 'pubrec') pendingAtReceive = pub.outgoing[(packet as { messageId: number }).messageId] !== undefined;
      });
      await pub.publishAsync('adapter/3', 'x', { qos: 2 });
      assert.equal(pendingAtReceive, true, 'the exchange was still pending when packetreceive fired');
    } finally {
      await end(pub);
    }
  });

  it("4. 'connect' comes only after the outgoing store was resent and acknowledged", async () => {
    const pub = await connect(rig.proxy.url, 'adapter-pub-4');
    try {
      rig.proxy.stall(true);
      pub.publish('adapter/4', 'x', { qos: 2 }, () => undefined);
      await waitUntil(() => Object.keys(pub.outgoing).length === 1, 5000, 'the publish to be pending');
      rig.proxy.reset();
      rig.proxy.stall(false);
      await waitUntil(() => !pub.connected, 5000, 'the connection to drop');
      const order: string[] = [];
      pub.on('packetreceive', (packet: Packet) => order.push(packet.cmd));
      pub.once('connect', () => order.push('connect'));
      // With its stores: without them MQTT.js's reconnect() starts from empty ones (Link does the same).
      pub.reconnect({ incomingStore: pub.incomingStore, outgoingStore: pub.outgoingStore });
      await waitUntil(() => order.includes('connect'), 10_000, "MQTT.js's connect event");
      assert.deepEqual(order.slice(0, order.indexOf('connect')).filter((c) => c !== 'connack'), ['pubrec', 'pubcomp']);
    } finally {
      rig.proxy.stall(false);
      await end(pub);
    }
  });

  it('5. deleting client.outgoing[id] makes MQTT.js ignore a late acknowledgement for that id', async () => {
    const pub = await connect(rig.proxy.url, 'adapter-pub-5');
    try {
      const delayed = rig.proxy.delayPackets('to-client', 'puback', 500);
      let calledBack = false;
      const errors: Error[] = [];
      pub.on('error', (err) => errors.push(err));
      pub.publish('adapter/5', 'x', { qos: 1 }, () => {
        calledBack = true;
      });
      await waitUntil(() => Object.keys(pub.outgoing).length === 1, 5000, 'the publish to be pending');
      for (const id of Object.keys(pub.outgoing)) delete pub.outgoing[Number(id)];
      await waitUntil(() => delayed.applied === 1, 5000, 'the PUBACK to be delayed');
      await new Promise((resolve) => setTimeout(resolve, 800));
      assert.equal(calledBack, false);
      assert.deepEqual(errors, []);
      assert.equal(pub.connected, true);
    } finally {
      await end(pub);
    }
  });

  it('6. an acknowledgement with a reason code MQTT 5 forbids there is reported as "Invalid <type> reason code"', async () => {
    // Mosquitto 2.0 answers an over-size QoS 2 PUBLISH with PUBREC 0x95, which MQTT 5 does not allow.
    const small = await startBroker({ requireMosquitto: true, extraConfig: ['message_size_limit 100'] });
    const pub = await connect(small.url, 'adapter-pub-6');
    try {
      const error = new Promise<Error>((resolve) => pub.once('error', resolve));
      pub.publish('adapter/6', 'x'.repeat(500), { qos: 2 }, () => undefined);
      const err = await error;
      assert.match(err.message, /^Invalid (puback|pubrec|pubcomp) reason code/);
    } finally {
      await end(pub);
      await small.close();
    }
  });

  it("7. client.stream.destroy() closes the connection at once and MQTT.js's 'close' follows", async () => {
    const pub = await connect(rig.broker.url, 'adapter-pub-7');
    try {
      const closed = new Promise<void>((resolve) => pub.once('close', () => resolve()));
      pub.stream.destroy();
      await closed;
      assert.equal(pub.connected, false);
    } finally {
      await end(pub);
    }
  });
});
