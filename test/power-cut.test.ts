/**
 * Guarantees 1 and 3 across a power cut: the device is SIGKILLed during an outage, after its readings
 * were spilled. Restarted on the same cache, it must deliver everything that was spilled, exactly once
 * and in order, before any new reading.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startAuditor, startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { acceptedNumbers, extractReadingNumber, startDevice, tempDir } from './helpers.js';

let broker: Broker;
let proxy: LinkProxy;
const cache = tempDir('power-cut');

before(async () => {
  broker = await startBroker();
  proxy = await startLinkProxy({ targetPort: broker.port });
});
after(async () => {
  await proxy.close();
  await broker.close();
  cache.remove();
});

it('SIGKILL during an outage: the spilled readings arrive in order before any new reading', async () => {
  const protocol = broker.protocolVersions.includes(5) ? 5 : 4;
  const auditor = await startAuditor({ url: broker.url, topics: 'sensors/#', protocolVersion: protocol, extract: extractReadingNumber });
  const common = { broker: proxy.url, clientId: 'dev-cut', cacheDir: cache.path, protocol } as const;
  const first = startDevice({ ...common, rate: 100, count: 400, after: 'flush' });
  let second: ReturnType<typeof startDevice> | undefined;
  try {
    await first.waitForEvent((e) => typeof e.n === 'number' && e.n >= 100, 15_000);
    await proxy.refuse(true);
    // flush() with the link down spills at once; once it resolves every accepted reading is on disk.
    await first.waitForEvent((e) => e.flushed === true, 30_000);
    const before = acceptedNumbers(first);
    assert.equal(before.length, 400);
    assert.ok(first.events.some((e) => e.state === 'caching' || e.state === 'draining'), 'the outage made the device spill');
    const exit = await first.kill('SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');

    await proxy.refuse(false);
    second = startDevice({ ...common, rate: 100, count: 100, nStart: 401, after: 'drain' });
    const opened = await second.waitForEvent((e) => e.open === true, 15_000);
    assert.equal(opened.state, 'draining', 'a non-empty cache starts in DRAINING');
    assert.ok((opened.cached as number) > 0);
    await second.waitForEvent((e) => e.drained === true, 60_000);

    const expected = [...before, ...acceptedNumbers(second)];
    const report = await auditor.waitFor({ 'dev-cut': expected }, 20_000);
    assert.deepEqual(
      { lost: report.lost, duplicates: report.duplicates, outOfOrder: report.outOfOrder },
      { lost: 0, duplicates: 0, outOfOrder: 0 },
    );
    const arrivals = auditor.arrivals('dev-cut');
    const firstNew = arrivals.findIndex((n) => n > 400);
    assert.ok(arrivals.slice(firstNew).every((n) => n > 400), 'no old reading after a new one');
    assert.equal(firstNew, 400, 'all 400 old readings came first');
  } finally {
    await first.kill().catch(() => undefined);
    await second?.kill().catch(() => undefined);
    await auditor.close();
  }
});
