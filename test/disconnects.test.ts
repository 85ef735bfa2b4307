/**
 * Disconnects are told apart in stats and events: a dropped link is a network failure and is
 * reconnected; our own close() is clean and never reconnects. (A server DISCONNECT with a reason code
 * is also counted as clean, but Mosquitto 2.0.11 sends none: on a session takeover or a shutdown it
 * just closes the socket, so that path has no real-broker test here.)
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { open } from 'holdfast';
import { canConnect } from '@holdfast/testkit';
import { brokerWithProxy, tempDir, waitUntil } from './helpers.js';

const rig = brokerWithProxy();


it('a dropped link is a network failure and reconnects; our close() is clean and does not', async () => {
  const dir = tempDir('disconnects');
  const protocolVersion = rig.protocol;
  const client = await open({ broker: rig.proxy.url, clientId: 'dev-disc', cacheDir: dir.path, protocolVersion, reconnect: { minMs: 200, maxMs: 400 } });
  const disconnects: Array<{ clean: boolean; reason: string }> = [];
  client.on('disconnect', (d: { clean: boolean; reason: string }) => disconnects.push(d));
  try {
    await waitUntil(() => client.stats().connected, 10_000, 'the first connection');
    rig.proxy.reset();
    await waitUntil(() => disconnects.length === 1, 10_000, 'the network failure');
    assert.deepEqual(disconnects[0], { clean: false, reason: 'network failure' });
    await waitUntil(() => client.stats().connected, 10_000, 'the reconnect');
    assert.equal(client.stats().networkDisconnects, 1);
    assert.equal(client.stats().reconnects, 1);
  } finally {
    const attemptsBefore = rig.proxy.attempts.length;
    await client.close();
    assert.deepEqual(disconnects.at(-1), { clean: true, reason: 'client closed' });
    // close() has stopped the worker. Any connection it began is queued at the proxy ahead of
    // ours, and the proxy accepts in order: once ours is counted, theirs would be too.
    assert.ok(await canConnect(rig.proxy.port), 'the proxy still listens');
    await waitUntil(() => rig.proxy.attempts.length > attemptsBefore, 5000, 'our own connection at the proxy');
    assert.equal(rig.proxy.attempts.length, attemptsBefore + 1, 'a clean close never reconnects');
    dir.remove();
  }
});
