/**
 * Disconnects are told apart in stats and events: a dropped link is a network failure and is
 * reconnected; our own close() is clean and never reconnects. (A server DISCONNECT with a reason code
 * is also counted as clean, but Mosquitto 2.0.11 sends none: on a session takeover or a shutdown it
 * just closes the socket, so that path has no real-broker test here.)
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { open } from 'holdfast';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { sleep, tempDir } from './helpers.js';

let broker: Broker;
let proxy: LinkProxy;

before(async () => {
  broker = await startBroker();
  proxy = await startLinkProxy({ targetPort: broker.port });
});
after(async () => {
  await proxy.close();
  await broker.close();
});

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

it('a dropped link is a network failure and reconnects; our close() is clean and does not', async () => {
  const dir = tempDir('disconnects');
  const protocolVersion = broker.protocolVersions.includes(5) ? 5 : 4;
  const client = await open({ broker: proxy.url, clientId: 'dev-disc', cacheDir: dir.path, protocolVersion, reconnect: { minMs: 200, maxMs: 400 } });
  const disconnects: Array<{ clean: boolean; reason: string }> = [];
  client.on('disconnect', (d: { clean: boolean; reason: string }) => disconnects.push(d));
  try {
    await waitFor(() => client.stats().connected, 'the first connection');
    proxy.reset();
    await waitFor(() => disconnects.length === 1, 'the network failure');
    assert.deepEqual(disconnects[0], { clean: false, reason: 'network failure' });
    await waitFor(() => client.stats().connected, 'the reconnect');
    assert.equal(client.stats().networkDisconnects, 1);
    assert.equal(client.stats().reconnects, 1);
  } finally {
    const attemptsBefore = proxy.attempts.length;
    await client.close();
    await sleep(800);
    assert.deepEqual(disconnects.at(-1), { clean: true, reason: 'client closed' });
    assert.equal(proxy.attempts.length, attemptsBefore, 'a clean close never reconnects');
    dir.remove();
  }
});
