/**
 * The platforms holdfast is verified on (NODE_PLATFORMS in the testkit): official Node 20 builds for
 * linux-arm64 and linux-armv7l, run as ARM code under qemu-user, and Node 22 and 24 for linux-x64. On
 * each, the same smoke: journal mode, a few hundred readings, a SIGKILL mid-stream, a restart on the same
 * cache, a drain. A subscriber here, on a native Mosquitto, must get every reading exactly once, in
 * order. The device also reports its CPU and the native add-ons it loaded, so an lmdb binding for the
 * wrong CPU (or none: lmdb has no JavaScript fallback) fails here rather than on a Pi.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { NODE_PLATFORMS, platformNode, spawnDevice, startAuditor, startBroker, type Broker, type DeviceProcess } from '@holdfast/testkit';
import { acceptedNumbers, extractReadingNumber, skipUnlessCI, tempDir } from './helpers.js';

const script = fileURLToPath(new URL('./fixtures/platform-device.js', import.meta.url));
// Small, because emulated Node runs many times slower: the first run SIGKILLs itself as publish()
// accepts reading KILL_AT of FIRST_RUN, then the restart publishes SECOND_RUN more and drains.
const RATE = 100;
const FIRST_RUN = 300;
const KILL_AT = 150;
const SECOND_RUN = 100;
// Emulated Node takes seconds to start, and more to open a cache (holdfast probes it in a child process).
const START_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 120_000;

let broker: Broker;
before(async () => {
  broker = await startBroker({ requireMosquitto: true });
});
after(async () => {
  await broker?.close();
});

for (const platform of NODE_PLATFORMS) {
  it(`${platform.name}: journal mode, SIGKILL mid-stream, restart on the same cache: every reading once, in order`, async (t) => {
    const node = platformNode(platform);
    if (!node.ok) return skipUnlessCI(t, node.missing);
    const began = performance.now();
    const clientId = `smoke-${platform.arch}-${platform.version}`;
    const cache = tempDir(`platform-${platform.arch}`);
    const auditor = await startAuditor({ url: broker.url, topics: `sensors/${clientId}`, extract: extractReadingNumber });
    const device = (nStart: number, count: number, extraEnv: Record<string, string> = {}): DeviceProcess =>
      spawnDevice({
        script,
        node: node.path,
        env: { HF_BROKER: broker.url, HF_CLIENT_ID: clientId, HF_CACHE_DIR: cache.path, HF_N_START: String(nStart), HF_COUNT: String(count), HF_RATE: String(RATE), ...extraEnv },
      });
    const first = device(1, FIRST_RUN, { HF_KILL_AT: String(KILL_AT) });
    let second: DeviceProcess | undefined;
    try {
      const opened = await first.waitForEvent((e) => e.open === true, START_TIMEOUT_MS);
      assert.equal(opened.arch, platform.arch, 'the device runs as code for the platform');
      assert.equal(opened.version, `v${platform.version}`);
      const addons = opened.native as string[];
      assert.ok(addons.some((a) => a.startsWith(`@lmdb/lmdb-linux-${platform.arch}/`)), `lmdb's binding for linux-${platform.arch} is loaded (loaded: ${addons.join(', ')})`);
      assert.ok(addons.every((a) => a.includes(`-linux-${platform.arch}/`)), `every add-on is built for linux-${platform.arch} (loaded: ${addons.join(', ')})`);

      assert.equal((await first.exited).signal, 'SIGKILL', `the device SIGKILLed itself; stderr: ${first.stderr()}`);
      const accepted = acceptedNumbers(first);
      assert.equal(accepted.length, KILL_AT, 'killed mid-stream, in the tick that accepted reading KILL_AT');
      const arrivedBeforeRestart = auditor.received;

      second = device(accepted.length + 1, SECOND_RUN);
      await second.waitForEvent((e) => e.closed === true, RUN_TIMEOUT_MS);
      const expected = [...accepted, ...acceptedNumbers(second)];
      const report = await auditor.waitFor({ [clientId]: expected }, 30_000);
      assert.deepEqual(
        { lost: report.lost, duplicates: report.duplicates, outOfOrder: report.outOfOrder },
        { lost: 0, duplicates: 0, outOfOrder: 0 },
      );
      assert.deepEqual(auditor.arrivals(clientId), expected, 'every reading once, in publish() order');
      t.diagnostic(
        `${platform.name}: ${expected.length} readings (${arrivedBeforeRestart} of the ${accepted.length} accepted before the kill had arrived before the restart) in ` +
          `${((performance.now() - began) / 1000).toFixed(1)} s; add-ons: ${addons.join(', ')}`,
      );
    } finally {
      await first.kill().catch(() => undefined);
      await second?.kill().catch(() => undefined);
      await auditor.close();
      cache.remove();
    }
  });
}
