import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
// The frame splitter is the proxy's internals, not public API: the built module is imported by path.
import { FrameSplitter } from '../packages/testkit/dist/mqtt-frames.js';
import { resetSocket } from '../packages/testkit/dist/link-pipe.js';
import { waitUntil } from './helpers.js';

/** A target server that records what it receives and can talk back. */
interface Target {
  port: number;
  sockets: net.Socket[];
  received(): string;
  close(): Promise<void>;
}

async function startTarget(echo: boolean): Promise<Target> {
  const sockets: net.Socket[] = [];
  let text = '';
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (echo) socket.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    sockets,
    received: () => text,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client socket that collects what it receives. */
interface Client {
  socket: net.Socket;
  received(): string;
  /** Resolves on close with the socket error code, if any. */
  closed: Promise<string | undefined>;
}

async function connectClient(port: number): Promise<Client> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let text = '';
  let errorCode: string | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', (err: NodeJS.ErrnoException) => (errorCode = err.code));
  const closed = new Promise<string | undefined>((resolve) => socket.once('close', () => resolve(errorCode)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => text, closed };
}

function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}


describe('link proxy', () => {
  let target: Target;
  let proxy: LinkProxy;
  const clients: net.Socket[] = [];

  before(async () => {
    target = await startTarget(true);
    proxy = await startLinkProxy({ targetPort: target.port });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await proxy.close();
    await target.close();
  });

  async function client(): Promise<Client> {
    const c = await connectClient(proxy.port);
    clients.push(c.socket);
    return c;
  }

  it('forwards bytes both ways and counts connections', async () => {
    assert.equal(proxy.url, `mqtt://127.0.0.1:${proxy.port}`);
    const before = proxy.attempts.length;
    const c = await client();
    c.socket.write('hello');
    await waitUntil(() => c.received() === 'hello', 2000);
    assert.equal(proxy.attempts.length, before + 1);
    assert.equal(proxy.connections, 1);
    c.socket.end();
    await c.closed;
    await waitUntil(() => proxy.connections === 0, 2000);
  });

  it('reset closes both sides', async () => {
    const c = await client();
    c.socket.write('x');
    await waitUntil(() => c.received() === 'x', 2000);
    const upstream = target.sockets.at(-1)!;
    const upstreamClosed = new Promise<void>((resolve) => upstream.once('close', () => resolve()));
    proxy.reset();
    const [clientError] = await Promise.all([c.closed, upstreamClosed]);
    assert.equal(clientError, 'ECONNRESET', 'the client sees a reset, not an orderly close');
    await waitUntil(() => proxy.connections === 0, 2000);
  });

  it('refuse gives ECONNREFUSED, then accepts again on the same port', async () => {
    const port = proxy.port;
    const c = await client();
    await proxy.refuse(true);
    await c.closed; // open connections are reset too
    assert.equal(await connectError(port), 'ECONNREFUSED');
    await proxy.refuse(false);
    assert.equal(proxy.port, port);
    const again = await client();
    again.socket.write('back');
    await waitUntil(() => again.received() === 'back', 2000);
    again.socket.destroy();
  });

  it('outage refuses for a while, then accepts', async () => {
    const outage = proxy.outage(300);
    await waitUntil(async () => (await connectError(proxy.port)) === 'ECONNREFUSED', 250, 'connections refused during the outage');
    await outage;
    assert.equal(await connectError(proxy.port), undefined);
  });

  it('stall holds bytes in both directions, then delivers them in order', async () => {
    const c = await client();
    c.socket.write('warm');
    await waitUntil(() => c.received() === 'warm', 2000);
    const sent = target.received().length;
    const upstream = target.sockets.at(-1)!;

    proxy.stall(true);
    upstream.write('S');
    for (const part of ['a', 'b', 'c']) {
      c.socket.write(part);
      await delay(20);
    }
    // A connection made during the stall is accepted, but its bytes are held too.
    const late = await client();
    late.socket.write('L');
    await delay(150);
    assert.equal(target.received().length, sent, 'nothing may pass a stalled link');
    assert.equal(c.received(), 'warm');
    assert.equal(proxy.connections, 2);

    proxy.stall(false);
    // 'S' was held on the way down; 'abc' was held on the way up, then echoed back.
    await waitUntil(() => c.received() === 'warmSabc' && late.received() === 'L', 2000);
    assert.equal(target.received().slice(sent).replace('L', ''), 'abc');
    c.socket.destroy();
    late.socket.destroy();
  });

  it('stallFor delivers after the given time', async () => {
    const c = await client();
    const t0 = performance.now();
    const stalled = proxy.stallFor(200);
    c.socket.write('s');
    await waitUntil(() => c.received() === 's', 2000);
    assert.ok(performance.now() - t0 >= 190, `echo came back after ${performance.now() - t0} ms`);
    await stalled;
    c.socket.destroy();
  });

  it('latency delays each direction and keeps order when lowered', async () => {
    const c = await client();
    proxy.setLatency(100);
    try {
      const t0 = performance.now();
      c.socket.write('p');
      await waitUntil(() => c.received() === 'p', 2000);
      const rtt = performance.now() - t0;
      assert.ok(rtt >= 195 && rtt < 1500, `round trip ${rtt} ms with 100 ms each way`);

      // A chunk sent after the latency drops must not overtake one sent before.
      proxy.setLatency(150);
      c.socket.write('1');
      await delay(10);
      proxy.setLatency(0);
      c.socket.write('2');
      await waitUntil(() => c.received() === 'p12', 2000);
    } finally {
      proxy.setLatency(0);
      c.socket.destroy();
    }
  });

  it('a reset while a forwarded FIN is still pending closes the socket (a leaked handle hung a test process at exit)', async () => {
    const server = net.createServer();
    const closed = new Promise<string>((resolve) => {
      server.once('connection', (socket) => {
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
        socket.on('close', () => resolve('closed'));
        socket.end();
        // end() issues the shutdown two ticks on; reset while it is pending, as the proxy can.
        process.nextTick(() => process.nextTick(() => {
          assert.ok(socket.writableEnded && !socket.writableFinished, 'the shutdown is pending');
          resetSocket(socket);
        }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const peer = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
    peer.on('error', () => {});
    try {
      const outcome = await Promise.race([closed, delay(5000).then(() => 'still open after 5 s')]);
      assert.equal(outcome, 'closed');
    } finally {
      peer.destroy();
      server.close();
    }
  });

  it('survives an upstream that refuses', async () => {
    const dead = await startTarget(false);
    await dead.close();
    const lonely = await startLinkProxy({ targetPort: dead.port });
    try {
      const c = await connectClient(lonely.port);
      await c.closed; // accepted, then closed because the target is down; no crash
      assert.equal(lonely.attempts.length, 1);
    } finally {
      await lonely.close();
    }
  });
});

/** An MQTT frame of `type` with a body of `length` bytes (varint length, so long bodies take 2–3 bytes). */
function frame(type: number, length: number): Buffer {
  const header = [type << 4];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    header.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from(header), Buffer.alloc(length, type)]);
}

it('the frame splitter hands on every byte in order, and exactly the wanted frames whole, however the stream is cut', () => {
  const frames = fc.array(fc.record({ type: fc.integer({ min: 1, max: 15 }), length: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 120, max: 20_000 })) }), { maxLength: 30 });
  fc.assert(
    fc.property(frames, fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 10 }), fc.integer({ min: 1, max: 15 }), (spec, cuts, wanted) => {
      const stream = Buffer.concat(spec.map((f) => frame(f.type, f.length)));
      const out: Buffer[] = [];
      const whole: Buffer[] = [];
      const splitter = new FrameSplitter((type) => type === wanted);
      const sink = {
        pass: (bytes: Buffer) => void out.push(bytes),
        whole: (f: Buffer, type: number) => {
          assert.equal(type, wanted);
          whole.push(f);
          out.push(f);
        },
      };
      for (let at = 0, k = 0; at < stream.length; k++) {
        const size = cuts[k % cuts.length]!;
        splitter.push(stream.subarray(at, at + size), sink);
        at += size;
      }
      assert.ok(splitter.atBoundary);
      assert.deepEqual(Buffer.concat(out), stream);
      assert.deepEqual(whole, spec.filter((f) => f.type === wanted).map((f) => frame(f.type, f.length)));
    }),
    { numRuns: 300 },
  );
});

describe('per-packet faults, with MQTT.js against Mosquitto', () => {
  let broker: Broker;
  let proxy: LinkProxy;
  let watcher: MqttClient;
  const seen: string[] = [];
  const clients: MqttClient[] = [];

  before(async () => {
    broker = await startBroker({ requireMosquitto: true });
    proxy = await startLinkProxy({ targetPort: broker.port });
    watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true });
    watcher.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await watcher.subscribeAsync('#', { qos: 2 });
  });
  after(async () => {
    for (const c of clients) await c.endAsync(true);
    await watcher.endAsync();
    await proxy.close();
    await broker.close();
  });

  /** A bare MQTT.js client through the proxy, counting the packets it receives by type. */
  async function client(): Promise<{ mqtt: MqttClient; received: Map<string, number> }> {
    const c = await mqtt.connectAsync(proxy.url, { protocolVersion: 5, clean: true, keepalive: 1, reconnectPeriod: 100 });
    clients.push(c);
    const received = new Map<string, number>();
    c.on('packetreceive', (p) => received.set(p.cmd, (received.get(p.cmd) ?? 0) + 1));
    return { mqtt: c, received };
  }

  /** Whether `promise` settles within `ms`. */
  async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    return Promise.race([promise.then(() => true, () => true), delay(ms).then(() => false)]);
  }

  for (const lost of ['pubrec', 'pubcomp'] as const) {
    it(`a dropped ${lost.toUpperCase()} leaves a QoS 2 publish unfinished on a live connection; a new connection finishes it`, async () => {
      const c = await client();
      const before = { ...proxy.packetFaults };
      const fault = proxy.dropPackets('to-client', lost);
      const published = c.mqtt.publishAsync(`drop/${lost}`, 'x', { qos: 2 });
      const pings = c.received.get('pingresp') ?? 0;
      assert.equal(await settlesWithin(published, 2500), false, 'the exchange never completes on this connection');
      assert.ok((c.received.get('pingresp') ?? 0) >= pings + 1, 'PINGREQ/PINGRESP kept flowing');
      assert.equal(proxy.connections, 1, 'the connection stayed up');
      assert.deepEqual([fault.applied, fault.remaining], [1, 0]);
      assert.equal(proxy.packetFaults.dropped, before.dropped + 1);
      // MQTT allows the resend only on a new connection: MQTT.js does it from its store.
      proxy.reset();
      await published;
      await waitUntil(() => seen.includes(`drop/${lost} x`), 5000);
      c.mqtt.end(true);
    });
  }

  it('a dropped client PUBLISH never reaches the broker; the packets after it do', async () => {
    const c = await client();
    proxy.dropPackets('to-broker', 'publish');
    for (const n of [1, 2, 3]) c.mqtt.publish('drop/up', String(n), { qos: 0 });
    await waitUntil(() => seen.includes('drop/up 3'), 5000);
    assert.deepEqual(seen.filter((m) => m.startsWith('drop/up')), ['drop/up 2', 'drop/up 3']);
    c.mqtt.end(true);
  });

  it('a duplicated PUBREC reaches the client twice and the publish completes', async () => {
    const c = await client();
    const before = proxy.packetFaults.duplicated;
    const fault = proxy.duplicatePackets('to-client', 'pubrec');
    await c.mqtt.publishAsync('dup/rec', 'x', { qos: 2 });
    await waitUntil(() => (c.received.get('pubrec') ?? 0) === 2, 2000);
    assert.equal(fault.applied, 1);
    assert.equal(proxy.packetFaults.duplicated, before + 1);
    c.mqtt.end(true);
  });

  it('a delayed PUBREC arrives late, and the packets behind it overtake it', async () => {
    const c = await client();
    proxy.delayPackets('to-client', 'pubrec', 1000);
    const order: string[] = [];
    const t0 = performance.now();
    const slow = c.mqtt.publishAsync('delay/slow', 'x', { qos: 2 }).then(() => order.push('qos2'));
    await waitUntil(() => proxy.packetFaults.delayed >= 1, 2000);
    await c.mqtt.publishAsync('delay/fast', 'y', { qos: 1 }).then(() => order.push('qos1'));
    await slow;
    assert.deepEqual(order, ['qos1', 'qos2'], 'the PUBACK behind the delayed PUBREC overtook it');
    assert.ok(performance.now() - t0 >= 950, `the QoS 2 publish took ${performance.now() - t0} ms`);
    c.mqtt.end(true);
  });

  it('disconnectOnTopic resets the connection on a matching PUBLISH, which the broker never sees', async () => {
    const c = await client();
    proxy.disconnectOnTopic('forbidden/+/x');
    try {
      await c.mqtt.publishAsync('allowed/a/x', 'ok', { qos: 1 });
      const closed = new Promise<void>((resolve) => c.mqtt.once('close', () => resolve()));
      const before = proxy.packetFaults.topicResets;
      c.mqtt.publish('forbidden/a/x', 'no', { qos: 1 });
      assert.ok(await settlesWithin(closed, 3000), 'the connection was reset');
      assert.equal(proxy.packetFaults.topicResets, before + 1);
      await delay(300);
      assert.ok(seen.includes('allowed/a/x ok'));
      assert.ok(!seen.some((m) => m.startsWith('forbidden/')), 'the broker never got the forbidden PUBLISH');
    } finally {
      proxy.disconnectOnTopic(undefined);
      c.mqtt.end(true);
    }
  });
});
