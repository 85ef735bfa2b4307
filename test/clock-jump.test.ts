/**
 * Guarantee 6: clock jumps are harmless. The device's wall clock (libfaketime, preloaded into the
 * device process only) jumps a year forward and then two years back while its readings sit in the
 * cache during an outage. Order, spilling, draining and timeouts use seqs and monotonic timers, so
 * nothing may be dropped or reordered, and the reported age never goes negative.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { spawnDevice, startAuditor } from '@holdfast/testkit';
import { brokerWithProxy, acceptedNumbers, deviceScript, extractReadingNumber, sleep, tempDir } from './helpers.js';

const FAKETIME_LIBS = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1'];
const faketime = FAKETIME_LIBS.find((lib) => existsSync(lib));

const rig = brokerWithProxy();
const dir = tempDir('clock');
after(() => dir.remove());

it('a wall clock jumping a year forward and two back while readings are cached loses and reorders nothing', async (t) => {
  if (!faketime) return t.skip('libfaketime is not installed (apt-get install faketime); CI installs it');
  const protocol = rig.protocol;
  const auditor = await startAuditor({ url: rig.broker.url, topics: 'sensors/#', protocolVersion: protocol, extract: extractReadingNumber });
  const clock = join(dir.path, 'faketime');
  writeFileSync(clock, '+0');
  const device = spawnDevice({
    script: deviceScript,
    execArgv: ['--import', 'tsx'],
    env: {
      LD_PRELOAD: faketime,
      FAKETIME_TIMESTAMP_FILE: clock,
      FAKETIME_NO_CACHE: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
      HF_BROKER: rig.proxy.url,
      HF_CLIENT_ID: 'dev-clock',
      HF_CACHE_DIR: join(dir.path, 'cache'),
      HF_RATE: '100',
      HF_COUNT: '600',
      HF_TIMEOUT_MS: '500',
      HF_PROTOCOL: String(protocol),
      HF_AFTER: 'drain',
    },
  });
  try {
    await device.waitForEvent((e) => e.open === true, 15_000);
    await sleep(1000);
    await rig.proxy.refuse(true);
    await device.waitForEvent((e) => e.state === 'caching', 10_000);
    await sleep(500);
    writeFileSync(clock, '+365d');
    await sleep(1000);
    writeFileSync(clock, '-365d');
    await sleep(1000);
    await rig.proxy.refuse(false);
    await device.waitForEvent((e) => e.drained === true, 60_000);

    const accepted = acceptedNumbers(device);
    assert.equal(accepted.length, 600);
    const report = await auditor.waitFor({ 'dev-clock': accepted }, 15_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    const statsLines = device.events.filter((e) => typeof e.stats === 'object') as Array<{ stats: { cached: number } }>;
    assert.ok(statsLines.some((e) => e.stats.cached > 0), 'readings really waited in the cache across the jumps');
  } finally {
    await device.kill().catch(() => undefined);
    await auditor.close();
  }
});
