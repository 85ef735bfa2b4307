/**
 * Guarantee 2, spill mode's loss bound, on a link that is slow rather than broken: every exchange
 * completes within timeoutMs, yet one QoS 2 message at a time over a 300 ms round trip cannot keep up
 * with 50 readings/s. Memory must not hold more than about rate × timeoutMs (what a SIGKILL may take):
 * once its oldest reading has waited timeoutMs, the pending stream spills, and the cache drains it.
 * Found by the chaos campaign (seed 311462: 126 readings lost at one kill, bound 52).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open } from 'holdfast';
import { auditedBrokerWithProxy, tempDir, waitUntil } from './helpers.js';

const rig = auditedBrokerWithProxy();
const RATE = 50;
const TIMEOUT_MS = 1000;
const ONE_WAY_MS = 150;

describe('a link too slow for the rate', () => {
  it("spill mode keeps at most about rate × timeoutMs in memory: the oldest reading's wait spills the rest, nothing is lost or reordered", async () => {
    const device = 'dev-slow-link';
    const dir = tempDir('slow-link');
    const client = await open({ broker: rig.proxy.url, clientId: device, cacheDir: dir.path, protocolVersion: rig.protocol, timeoutMs: TIMEOUT_MS, reconnect: { minMs: 100, maxMs: 300 } });
    const spills: Array<Record<string, unknown>> = [];
    client.on('spill', (data: Record<string, unknown>) => spills.push(data));
    const published: number[] = [];
    let most = 0;
    try {
      rig.proxy.setLatency(ONE_WAY_MS);
      const started = performance.now();
      for (let n = 1; n <= RATE * 5; n++) {
        // Paced by elapsed time, as a measurement loop is.
        while (performance.now() - started < ((n - 1) * 1000) / RATE) await new Promise((resolve) => setTimeout(resolve, 5));
        client.publish(`sensors/${device}`, JSON.stringify({ device, n }));
        published.push(n);
        most = Math.max(most, client.stats().memoryQueued);
      }
      rig.proxy.setLatency(0);
      await waitUntil(() => client.stats().cached.messages === 0 && client.stats().memoryQueued === 0, 30_000, 'the backlog to drain');
      const report = await rig.auditor.waitFor({ [device]: published }, 30_000);
      const mine = report.devices[device]!;
      assert.deepEqual({ lost: mine.lost, duplicates: mine.duplicates, outOfOrder: mine.outOfOrder }, { lost: 0, duplicates: 0, outOfOrder: 0 });
      // On top of rate × timeoutMs: the one in flight, and a publishing burst after a loaded event loop (10 = 200 ms of readings).
      assert.ok(most <= (RATE * TIMEOUT_MS) / 1000 + 10, `memory held at most ${most} readings (rate × timeoutMs = ${(RATE * TIMEOUT_MS) / 1000})`);
      assert.ok(spills.some((s) => s.reason === 'falling-behind'), `spilled because the link fell behind: ${JSON.stringify(spills)}`);
    } finally {
      rig.proxy.setLatency(0);
      await client.close();
      dir.remove();
    }
  });
});
