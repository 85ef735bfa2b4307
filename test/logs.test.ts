/**
 * Structured logs: JSON lines on stdout (for journald) with a level option, recording connect,
 * disconnect with its reason, every outage (offline, with its cause, and online, with its duration),
 * spill, drain start and end — and never a payload or a password.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { spawnDevice } from '@holdfast/testkit';
import { brokerWithProxy, deviceScript, sleep, tempDir, waitUntil } from './helpers.js';

const rig = brokerWithProxy();

it('logs lifecycle events as JSON and never a payload', async () => {
  const dir = tempDir('logs');
  const protocol = rig.protocol;
  const device = spawnDevice({
    script: deviceScript,
    execArgv: ['--import', 'tsx'],
    env: { HF_BROKER: rig.proxy.url, HF_CLIENT_ID: 'dev-logs', HF_CACHE_DIR: dir.path, HF_RATE: '100', HF_COUNT: '300', HF_TIMEOUT_MS: '300', HF_PROTOCOL: String(protocol), HF_AFTER: 'drain', HF_LOG_LEVEL: 'info' },
  });
  try {
    // Connected and sending before the outage, so there is a disconnect to log.
    await device.waitForEvent((e) => typeof e.stats === 'object' && (e.stats as { delivered: number }).delivered > 0, 15_000);
    await rig.proxy.outage(1500);
    await device.waitForEvent((e) => e.drained === true, 30_000);
    await device.exited;
    const logs = device.events.filter((e) => e.lib === 'holdfast');
    const events = new Set(logs.map((e) => e.event));
    for (const name of ['connect', 'disconnect', 'spill', 'drain-start', 'drain-end']) assert.ok(events.has(name), `logged '${name}'; got ${[...events].join(', ')}`);
    for (const line of logs) {
      assert.equal(typeof line.level, 'number');
      assert.equal(typeof line.time, 'string');
      assert.equal(line.clientId, 'dev-logs');
    }
    const disconnect = logs.find((e) => e.event === 'disconnect')!;
    assert.equal(disconnect.clean, false);
    assert.equal(disconnect.reason, 'network failure');
    const offline = logs.find((e) => e.event === 'offline' && e.cause === 'disconnected');
    assert.ok(offline, `the outage is logged as offline: ${JSON.stringify(logs.map((l) => l.event))}`);
    assert.equal(offline.level, 40, 'at warn');
    assert.equal(offline.reason, 'network failure');
    // The end of that outage (under load a slow exchange may add a short 'exchange-overdue' one).
    const online = logs.find((e) => e.event === 'online' && e.cause === 'disconnected' && logs.indexOf(e) > logs.indexOf(offline));
    assert.ok(online && Number(online.offlineMs) >= 1000, `and its end, with the outage's duration: ${JSON.stringify(online)}`);
    // Payloads are JSON like {"device":"dev-logs","n":1,"v":0.123}: their values must never be logged.
    for (const line of logs.map((l) => JSON.stringify(l))) {
      assert.ok(!line.includes('"v":') && !line.includes('"device":"dev-logs"'), `no payload in a log line: ${line}`);
    }
  } finally {
    await device.kill().catch(() => undefined);
    dir.remove();
  }
});

it('logs a broker hang (SIGSTOP) when the message in flight is overdue, and its end with the duration', async () => {
  const dir = tempDir('logs-hang');
  // timeoutMs 2000: the exchange is overdue after 500 ms, long before the sender spills.
  const device = spawnDevice({
    script: deviceScript,
    execArgv: ['--import', 'tsx'],
    env: { HF_BROKER: rig.proxy.url, HF_CLIENT_ID: 'dev-logs-hang', HF_CACHE_DIR: dir.path, HF_RATE: '20', HF_TIMEOUT_MS: '2000', HF_PROTOCOL: String(rig.protocol), HF_LOG_LEVEL: 'info' },
  });
  const logged = (event: string): Array<Record<string, unknown>> => device.events.filter((e) => e.lib === 'holdfast' && e.event === event);
  try {
    await device.waitForEvent((e) => e.lib === 'holdfast' && e.event === 'online', 15_000);
    await sleep(300);
    rig.broker.pause();
    try {
      await waitUntil(() => logged('offline').length > 0, 5000, 'the offline line');
      const offline = logged('offline')[0]!;
      assert.equal(offline.cause, 'exchange-overdue');
      assert.equal(offline.level, 40);
      assert.equal(offline.thresholdMs, 500);
      assert.ok(Number(offline.waitedMs) > 500);
      await sleep(2000);
    } finally {
      rig.broker.resume();
    }
    await waitUntil(() => logged('online').length > 1, 10_000, 'the online line after the hang');
    // [0] is the start-up connection; [1] the end of the hang.
    const online = logged('online')[1]!;
    assert.equal(online.cause, 'exchange-overdue');
    assert.ok(Number(online.offlineMs) >= 2000, `the hang's duration: ${JSON.stringify(online)}`);
  } finally {
    rig.broker.resume();
    await device.kill().catch(() => undefined);
    dir.remove();
  }
});
