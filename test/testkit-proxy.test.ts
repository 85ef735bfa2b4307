import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startLinkProxy, type LinkProxy } from '@holdfast/testkit';
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
