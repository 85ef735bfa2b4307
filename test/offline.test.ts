/**
 * Whether the client is offline, told as it happens: stats().offline with its cause and duration, the
 * 'state' event's second argument, 'offline' / 'online' events, /health and /metrics. A refused
 * connection shows at once; a hung broker (SIGSTOP, connection still up) shows once the message in flight
 * has waited a quarter of timeoutMs, well before the sender gives up on it at timeoutMs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open, startHealthServer, type ClientState, type Connectivity, type HoldfastOptions } from 'holdfast';
import { auditedBrokerWithProxy, tempDir, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();

function options(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, reconnect: { minMs: 100, maxMs: 300 }, connectTimeoutMs: 1000, keepaliveSec: 30, ...extra };
}

const reading = (device: string, n: number): string => JSON.stringify({ device, n });

describe('offline', () => {
  it('a refused connection is offline from open() on, not after timeoutMs; online again with the outage duration', async () => {
    const dir = tempDir('offline-refused');
    await rig.proxy.refuse(true);
    const client = await open(options('dev-refused', dir.path, { timeoutMs: 10_000 }));
    try {
      const changes: Array<[ClientState, Connectivity]> = [];
      client.on('state', (state: ClientState, connectivity: Connectivity) => changes.push([state, connectivity]));
      const online: Array<Record<string, unknown>> = [];
      client.on('online', (data: Record<string, unknown>) => online.push(data));
      client.publish('sensors/dev-refused', reading('dev-refused', 1));
      const during = client.stats();
      // The state may still be 'direct', or already 'caching' once the refused attempt has come back; the flag is what tells.
      assert.ok(during.state === 'direct' || during.state === 'caching', `state ${during.state}`);
      assert.equal(during.offline, true);
      assert.equal(during.offlineCause, 'disconnected');
      await waitUntil(() => client.stats().offlineForMs >= 500, 5000, 'the outage to be measured');
      await rig.proxy.refuse(false);
      await waitUntil(() => !client.stats().offline, 10_000, 'online');
      await waitUntil(() => online.length > 0, 5000, "the 'online' event");
      assert.equal(online[0]!.cause, 'disconnected');
      assert.ok(Number(online[0]!.offlineMs) >= 500, `outage duration: ${JSON.stringify(online[0])}`);
      const last = changes.at(-1)!;
      assert.equal(last[1].offline, false, `the 'state' listener learns it is online: ${JSON.stringify(changes)}`);
      assert.equal(client.stats().offlineForMs, 0);
      await client.drained();
      await client.close();
      assert.deepEqual(changes.at(-1), ['closed', { offline: false, offlineCause: undefined, offlineForMs: 0 }]);
    } finally {
      await rig.proxy.refuse(false);
      await client.close();
      dir.remove();
    }
  });

  it('a hung broker (SIGSTOP) is offline (exchange overdue) after timeoutMs / 4, on stats, the state event, /health and /metrics', async () => {
    const dir = tempDir('offline-hung');
    const timeoutMs = 4000;
    const client = await open(options('dev-hang', dir.path, { timeoutMs }));
    const server = await startHealthServer(client, { port: 0, cacheDir: dir.path, diskMinFreeBytes: 0, diskMinFreeRatio: 0 });
    try {
      const changes: Array<[ClientState, Connectivity]> = [];
      client.on('state', (state: ClientState, connectivity: Connectivity) => changes.push([state, connectivity]));
      const offline: Array<Record<string, unknown>> = [];
      const online: Array<Record<string, unknown>> = [];
      client.on('offline', (data: Record<string, unknown>) => offline.push(data));
      client.on('online', (data: Record<string, unknown>) => online.push(data));
      client.publish('sensors/dev-hang', reading('dev-hang', 1));
      await client.drained();
      assert.equal(client.stats().offline, false);

      const onlineBefore = online.length;
      rig.broker.pause();
      const hungAt = performance.now();
      client.publish('sensors/dev-hang', reading('dev-hang', 2));
      await waitUntil(() => client.stats().offline, timeoutMs, 'offline while the broker hangs');
      const detectedAfter = performance.now() - hungAt;
      const during = client.stats();
      assert.equal(during.offlineCause, 'exchange-overdue');
      assert.equal(during.connected, true, 'the TCP connection is still up');
      assert.equal(during.state, 'direct', `reported before the sender gives up at timeoutMs (after ${Math.round(detectedAfter)} ms)`);
      await waitUntil(() => changes.some(([, c]) => c.offline), 2000, "a 'state' event with the offline flag");
      assert.equal(changes.find(([, c]) => c.offline)![1].offlineCause, 'exchange-overdue');
      assert.equal(offline[0]?.cause, 'exchange-overdue');
      assert.equal(offline[0]?.thresholdMs, timeoutMs / 4);

      const health = await fetch(`http://127.0.0.1:${server.port}/health`);
      const report = (await health.json()) as { status: string; reasons: string[] };
      assert.equal(health.status, 503);
      assert.match(report.reasons.join(';'), /^offline for \d+\.\d s: the broker has not answered the message in flight/);
      const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
      assert.match(metrics, /^holdfast_offline\{cause="exchange-overdue"\} 1$/m);
      assert.match(metrics, /^holdfast_offline\{cause="disconnected"\} 0$/m);
      assert.match(metrics, /^holdfast_offline_seconds [1-9]/m);

      await waitUntil(() => performance.now() - hungAt > 2000, 5000);
      rig.broker.resume();
      await waitUntil(() => !client.stats().offline, 10_000, 'online once the broker answers');
      await waitUntil(() => online.length > onlineBefore, 5000, "the 'online' event");
      const hangEnded = online[onlineBefore]!;
      assert.equal(hangEnded.cause, 'exchange-overdue');
      assert.ok(Number(hangEnded.offlineMs) >= 1800, `the outage lasted the hang: ${JSON.stringify(hangEnded)}`);
      assert.equal(changes.at(-1)![1].offline, false);
      await client.drained();
      const audit = await rig.auditor.waitFor({ 'dev-hang': [1, 2] }, 10_000);
      assert.deepEqual([audit.lost, audit.duplicates, audit.outOfOrder], [0, 0, 0]);
    } finally {
      rig.broker.resume();
      await server.close();
      await client.close();
      dir.remove();
    }
  });
});
