import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { freePort, spawnDevice, startBroker, type Broker } from '@holdfast/testkit';
import { skipUnlessCI, waitUntil } from './helpers.js';

/** Connect once (no reconnect); resolves with the CONNACK outcome or 'timeout'. */
function tryConnect(url: string, protocolVersion: 3 | 4 | 5, waitMs: number): Promise<{ result: 'connected' | 'timeout' | 'error'; message?: string; client: mqtt.MqttClient }> {
  const client = mqtt.connect(url, { protocolVersion, reconnectPeriod: 0, connectTimeout: 30_000 });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ result: 'timeout', client }), waitMs);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve({ result: 'connected', client });
    });
    client.once('error', (err) => {
      clearTimeout(timer);
      resolve({ result: 'error', message: err.message, client });
    });
  });
}

async function connectOk(url: string, protocolVersion: 3 | 4 | 5 = 4): Promise<void> {
  const { result, message, client } = await tryConnect(url, protocolVersion, 5_000);
  client.end(true);
  assert.equal(result, 'connected', message);
}

async function connectFails(url: string): Promise<void> {
  const { result, client } = await tryConnect(url, 4, 2_000);
  client.end(true);
  assert.equal(result, 'error');
}

it('freePort gives a usable loopback port', async () => {
  const port = await freePort();
  assert.ok(Number.isInteger(port) && port > 0 && port < 65536);
});

it('refuses contradictory options', async () => {
  await assert.rejects(startBroker({ forceAedes: true, requireMosquitto: true }), /cannot both be true/);
});

describe('broker (mosquitto when installed)', () => {
  let broker: Broker;
  const notes: string[] = [];

  before(async () => {
    broker = await startBroker({ persistence: true, log: (line) => notes.push(line) });
  });
  after(async () => {
    await broker.close();
  });

  it('describes itself', () => {
    assert.equal(broker.host, '127.0.0.1');
    assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
    assert.equal(typeof broker.pid, 'number');
    assert.ok(existsSync(broker.dir));
    if (broker.kind === 'mosquitto') assert.deepEqual([...broker.protocolVersions], [3, 4, 5]);
    else assert.deepEqual(notes, ['mosquitto not found, using embedded Aedes']);
  });

  it('stops, starts and restarts on the same port', async () => {
    const port = broker.port;
    await connectOk(broker.url);
    await broker.stop();
    assert.equal(broker.pid, undefined);
    await connectFails(broker.url);
    await broker.start();
    assert.equal(broker.port, port);
    await connectOk(broker.url);
    const pid = broker.pid;
    await broker.restart();
    assert.notEqual(broker.pid, pid);
    assert.equal(broker.port, port);
    await connectOk(broker.url);
    await broker.kill();
    await connectFails(broker.url);
    await broker.start();
    await connectOk(broker.url);
  });

  it('pause makes a connect hang without CONNACK; resume completes it', async () => {
    broker.pause();
    let client: mqtt.MqttClient | undefined;
    try {
      const attempt = await tryConnect(broker.url, 4, 1_000);
      client = attempt.client;
      assert.equal(attempt.result, 'timeout', 'a SIGSTOPped broker must not answer');
      const connected = new Promise<void>((resolve) => client!.once('connect', () => resolve()));
      broker.resume();
      await connected; // the same TCP connection: the kernel held the CONNECT for it
    } finally {
      broker.resume();
      client?.end(true);
    }
  });

  it('persistence keeps a retained message across restart', async (t) => {
    if (broker.kind !== 'mosquitto') return skipUnlessCI(t, 'the Aedes fallback keeps state in memory only');
    const topic = `retained/${Date.now()}`;
    const pub = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
    await pub.endAsync();
    await broker.restart();
    const sub = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      const got = new Promise<string>((resolve) => sub.on('message', (_t, payload) => resolve(payload.toString())));
      await sub.subscribeAsync(topic, { qos: 1 });
      assert.equal(await got, 'kept');
    } finally {
      await sub.endAsync();
    }
  });

  it('mosquitto logs connections to mosquitto.log in its dir', async (t) => {
    if (broker.kind !== 'mosquitto') return skipUnlessCI(t, 'Aedes keeps its own log');
    const other = await startBroker({ log: () => {} });
    try {
      const client = await mqtt.connectAsync(other.url, { clientId: 'logged-client', reconnectPeriod: 0 });
      await client.endAsync();
      await other.stop(); // mosquitto buffers its log until it exits
      assert.match(readFileSync(path.join(other.dir, 'mosquitto.log'), 'utf8'), /New client connected .* as logged-client/);
    } finally {
      await other.close();
    }
  });

  it('close kills it and removes its dir, idempotently', async () => {
    const other = await startBroker({ log: () => {} });
    other.pause(); // close must also end a paused broker
    await other.close();
    await other.close();
    assert.equal(other.pid, undefined);
    assert.ok(!existsSync(other.dir));
    await connectFails(other.url);
    await assert.rejects(other.start(), /closed/);
  });

  it('applies extraConfig (mosquitto)', async (t) => {
    if (broker.kind !== 'mosquitto') return skipUnlessCI(t, 'extraConfig is mosquitto-only');
    const small = await startBroker({ extraConfig: ['message_size_limit 100'] });
    // MQTT 3.1.1: mosquitto drops an oversized publish silently. (Over MQTT 5 it answers
    // with reason 0x95, which MQTT.js 5.16 rejects as an invalid PUBACK reason code.)
    const client = await mqtt.connectAsync(small.url, { protocolVersion: 4, reconnectPeriod: 0 });
    try {
      assert.match(readFileSync(path.join(small.dir, 'mosquitto.conf'), 'utf8'), /^message_size_limit 100$/m);
      const topic = 'size/test';
      const got: string[] = [];
      client.on('message', (_t, payload) => got.push(payload.toString()));
      await client.subscribeAsync(topic, { qos: 1 });
      await client.publishAsync(topic, 'x'.repeat(500), { qos: 1 });
      await client.publishAsync(topic, 'small', { qos: 1 });
      // In order on one topic: once 'small' is in, the oversized one would have come before it.
      await waitUntil(() => got.includes('small'), 5000, "'small' to arrive");
      assert.deepEqual(got, ['small'], 'the oversized message must be dropped by the broker');
    } finally {
      await client.endAsync();
      await small.close();
    }
  });
});

describe('Aedes fallback (forced)', () => {
  let broker: Broker;
  const notes: string[] = [];

  before(async () => {
    broker = await startBroker({ forceAedes: true, extraConfig: ['message_size_limit 100'], log: (line) => notes.push(line) });
  });
  after(async () => {
    await broker.close();
  });

  it('runs Aedes in a child process and says what it ignores', () => {
    assert.equal(broker.kind, 'aedes');
    assert.deepEqual([...broker.protocolVersions], [3, 4]);
    assert.equal(typeof broker.pid, 'number');
    assert.notEqual(broker.pid, process.pid);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /extraConfig .*ignored/);
  });

  it('speaks MQTT 3.1.1 and refuses MQTT 5', async () => {
    await connectOk(broker.url, 3);
    await connectOk(broker.url, 4);
    const v5 = await tryConnect(broker.url, 5, 5_000);
    v5.client.end(true);
    assert.equal(v5.result, 'error');
    assert.match(v5.message ?? '', /unacceptable protocol version/i);
  });

  it('pauses, resumes, stops and starts like mosquitto', async () => {
    const port = broker.port;
    broker.pause();
    const attempt = await tryConnect(broker.url, 4, 1_000);
    try {
      assert.equal(attempt.result, 'timeout');
      const connected = new Promise<void>((resolve) => attempt.client.once('connect', () => resolve()));
      broker.resume();
      await connected;
    } finally {
      broker.resume();
      attempt.client.end(true);
    }
    await broker.restart();
    assert.equal(broker.port, port);
    await connectOk(broker.url);
    await broker.kill();
    await connectFails(broker.url);
    await broker.start();
    await connectOk(broker.url);
  });
});

describe('cleanup when the parent process ends', () => {
  // A parent that starts a paused broker (the hardest to stop) and never closes it.
  const parentScript = (mode: 'exit' | 'sigterm'): string => `
import { startBroker } from ${JSON.stringify(import.meta.resolve('@holdfast/testkit'))};
const broker = await startBroker({ forceAedes: process.env.FORCE_AEDES === '1' });
broker.pause();
console.log(JSON.stringify({ pid: broker.pid, dir: broker.dir }));
${mode === 'sigterm' ? 'setInterval(() => {}, 1000);' : '// nothing else keeps the loop alive: the process exits on its own'}
`;
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'testkit-parent-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A killed orphan may linger as a zombie until init reaps it: that counts as dead. */
  function alive(pid: number): boolean {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat')) return false;
    }
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  for (const [mode, forceAedes] of [['exit', false], ['sigterm', false], ['exit', true]] as const) {
    it(`kills a forgotten ${forceAedes ? 'Aedes' : 'default'} broker on parent ${mode}`, async () => {
      const script = path.join(dir, `parent-${mode}-${String(forceAedes)}.mjs`);
      writeFileSync(script, parentScript(mode));
      const parent = spawnDevice({ script, env: { FORCE_AEDES: forceAedes ? '1' : '0' } });
      const started = await parent.waitForEvent((e) => typeof e['pid'] === 'number', 10_000);
      const pid = started['pid'] as number;
      if (mode === 'sigterm') await parent.kill('SIGTERM');
      const exit = await parent.exited;
      assert.equal(exit.signal, mode === 'sigterm' ? 'SIGTERM' : null, parent.stderr());
      await waitUntil(() => !alive(pid), 1000, `broker ${pid} to end with its parent`);
      assert.equal(existsSync(started['dir'] as string), false, 'its temp dir is removed too');
    });
  }
});
