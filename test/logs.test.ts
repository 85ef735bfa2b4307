/**
 * Structured logs: JSON lines on stdout (for journald) with a level option, recording connect,
 * disconnect with its reason, spill, drain start and end — and never a payload or a password.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { spawnDevice } from '@holdfast/testkit';
import { brokerWithProxy, deviceScript, tempDir } from './helpers.js';

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
    // Payloads are JSON like {"device":"dev-logs","n":1,"v":0.123}: their values must never be logged.
    for (const line of logs.map((l) => JSON.stringify(l))) {
      assert.ok(!line.includes('"v":') && !line.includes('"device":"dev-logs"'), `no payload in a log line: ${line}`);
    }
  } finally {
    await device.kill().catch(() => undefined);
    dir.remove();
  }
});
