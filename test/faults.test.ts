/**
 * Guarantee 1: no loss across outages. A device child process publishes 1,000 readings at 100/s
 * through the fault proxy while one fault hits the link or the broker; every reading must reach the
 * broker exactly once and in order, and the device must really have spilled (the fault was real).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAuditor, startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { acceptedNumbers, extractReadingNumber, skipUnlessCI, sleep, startDevice, tempDir } from './helpers.js';

const READINGS = 1000;
const RATE = 100;

interface Scenario {
  name: string;
  persistence?: boolean;
  /** Whether the fault outlasts timeoutMs, so the device must spill to its cache. */
  mustSpill: boolean;
  inject(broker: Broker, proxy: LinkProxy): Promise<void>;
}

const scenarios: Scenario[] = [
  { name: 'a 4 s link reset', mustSpill: true, inject: (_b, proxy) => proxy.outage(4000) },
  { name: 'a 4 s link stall (TCP holds the bytes)', mustSpill: true, inject: (_b, proxy) => proxy.stallFor(4000) },
  {
    name: 'a 5 s broker hang (SIGSTOP)',
    mustSpill: true,
    inject: async (broker) => {
      broker.pause();
      await sleep(5000);
      broker.resume();
    },
  },
  { name: 'a broker restart with persistence', persistence: true, mustSpill: false, inject: (broker) => broker.restart() },
];

for (const scenario of scenarios) {
  describe(`100 readings/s through ${scenario.name}`, () => {
    let broker: Broker;
    let proxy: LinkProxy;
    const cache = tempDir('faults');

    before(async () => {
      broker = await startBroker({ persistence: scenario.persistence ?? false });
      proxy = await startLinkProxy({ targetPort: broker.port });
    });
    after(async () => {
      await proxy.close();
      await broker.close();
      cache.remove();
    });

    it('delivers every reading exactly once and in order', async (t) => {
      if (scenario.persistence && broker.kind !== 'mosquitto') return skipUnlessCI(t, 'the Aedes fallback has no disk persistence');
      const protocol = broker.protocolVersions.includes(5) ? 5 : 4;
      const auditor = await startAuditor({ url: broker.url, topics: 'sensors/#', protocolVersion: protocol, extract: extractReadingNumber });
      const device = startDevice({ broker: proxy.url, clientId: 'dev-fault', cacheDir: cache.path, rate: RATE, count: READINGS, protocol, after: 'drain' });
      try {
        // The fault hits a device in full flow: 200 readings accepted, the rest still to come.
        await device.waitForEvent((e) => typeof e.n === 'number' && e.n >= 200, 15_000);
        await scenario.inject(broker, proxy);
        await device.waitForEvent((e) => e.drained === true, 60_000);
        const accepted = acceptedNumbers(device);
        assert.equal(accepted.length, READINGS);
        const report = await auditor.waitFor({ 'dev-fault': accepted }, 20_000);
        assert.deepEqual(
          { lost: report.lost, duplicates: report.duplicates, outOfOrder: report.outOfOrder, unique: report.unique },
          { lost: 0, duplicates: 0, outOfOrder: 0, unique: READINGS },
        );
        // 'closed' comes from the device's own close() after the drain, racing this check.
        const states = device.events.filter((e) => typeof e.state === 'string' && e.open === undefined && e.state !== 'closed').map((e) => e.state);
        if (scenario.mustSpill) {
          assert.ok(states.includes('caching'), `expected a spill during the fault; states seen: ${states.join(' → ')}`);
          assert.ok(states.includes('draining'), 'expected the cache to drain after the fault');
        }
        assert.equal(states.at(-1) ?? 'direct', 'direct', 'ends back in direct sending');
        await device.exited;
      } finally {
        await device.kill().catch(() => undefined);
        await auditor.close();
      }
    });
  });
}
