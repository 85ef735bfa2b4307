/**
 * QoS 1 mode, for brokers without QoS 2 (AWS IoT Core, Azure IoT Hub): one message in flight, the
 * same spill and drain, at least once. Through a link reset nothing is lost and nothing is reordered;
 * a duplicate is possible (the PUBACK can be lost), and MQTT 5 receivers can drop it by holdfast-id.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { open } from 'holdfast';
import { startAuditor } from '@holdfast/testkit';
import { brokerWithProxy, extractReadingNumber, sleep, tempDir } from './helpers.js';

const rig = brokerWithProxy();

it('qos: 1 delivers every reading at least once and in order through a link reset', async () => {
  const protocolVersion = rig.protocol;
  const auditor = await startAuditor({ url: rig.broker.url, topics: 'sensors/#', protocolVersion, extract: extractReadingNumber });
  const dir = tempDir('qos1');
  const client = await open({ broker: rig.proxy.url, clientId: 'dev-qos1', cacheDir: dir.path, qos: 1, protocolVersion, timeoutMs: 300, reconnect: { minMs: 100, maxMs: 300 } });
  const states: string[] = [];
  client.on('state', (s: string) => states.push(s));
  try {
    for (let n = 1; n <= 300; n++) {
      client.publish('sensors/dev-qos1', JSON.stringify({ device: 'dev-qos1', n }));
      if (n === 100) void rig.proxy.outage(1500);
      if (n % 10 === 0) await sleep(10);
    }
    await client.drained();
    const expected = Array.from({ length: 300 }, (_, i) => i + 1);
    const report = await auditor.waitFor({ 'dev-qos1': expected }, 10_000);
    assert.equal(report.lost, 0);
    assert.equal(report.outOfOrder, 0);
    assert.ok(report.duplicates <= 1, `at least once: at most the one in flight twice (got ${report.duplicates})`);
    assert.ok(states.includes('caching'), 'the outage made it spill');
    assert.equal(client.stats().delivered, 300);
  } finally {
    await client.close();
    await auditor.close();
    dir.remove();
  }
});
