/**
 * Guarantees 2 and 11 across a real power loss, not only a SIGKILL: the cache lives on the testkit's
 * power-loss layer, so each cut also drops every write the device had not synced (the page cache).
 * The device calls flush() every few ms and SIGKILLs itself in the same tick as it reports a
 * confirmation, the worst moment for the claim: every reading flush() confirmed must arrive, exactly
 * once and in order, after the device restarts on what survived (spill mode too: a drain records each
 * PUBREC before its PUBREL, so a reading the broker has is never sent again as new). Two cuts come while the link is down
 * (everything waits in the cache), one while it sends. Readings not yet confirmed may be lost; how
 * many is reported, not asserted. Journal runs again on a slow card (the testkit's slow-fsync shim);
 * other latencies or shims: `pnpm bench power-cut --power-loss` (--device-env).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { slowFsync, slowFsyncShim } from '@holdfast/testkit';
import { acceptedNumbers, auditedBrokerWithProxy, powerLossLayer, skipUnlessCI, startDevice } from './helpers.js';

const rig = auditedBrokerWithProxy();
const CUTS = 3;

async function cutsThenDrain(t: TestContext, durability: 'journal' | 'spill', fsyncMs?: number): Promise<void> {
  const layer = await powerLossLayer(t);
  if (!layer) return;
  // An SD card's flush latency.
  const slow = fsyncMs === undefined ? undefined : slowFsync(fsyncMs);
  const deviceEnv = slow?.env;
  const clientId = `dev-power-loss-${durability}${fsyncMs === undefined ? '' : `-${fsyncMs}ms`}`;
  const common = { broker: rig.proxy.url, clientId, cacheDir: join(layer.path, 'cache'), durability, protocol: rig.protocol } as const;
  const mustArrive: number[] = [];
  const accepted: number[] = [];
  let dropped = 0;
  let unconfirmedAtCuts = 0;
  try {
    for (let cut = 0; cut < CUTS; cut++) {
      await rig.proxy.refuse(cut < CUTS - 1);
      const env = { ...(cut > 0 ? layer.afterBootEnv : {}), ...deviceEnv };
      const device = startDevice({ ...common, rate: 200, nStart: (accepted.at(-1) ?? 0) + 1, flushMs: 100, killAtConfirm: 5 + cut, extraEnv: env });
      const exit = await device.exited;
      assert.equal(exit.signal, 'SIGKILL', `life ${cut} was to be SIGKILLed: ${device.stderr()}`);
      const life = acceptedNumbers(device);
      const confirmed = Math.max(...device.events.filter((e) => typeof e.confirmed === 'number').map((e) => e.confirmed as number));
      assert.ok(life.length > 0 && confirmed >= life[0]!, `life ${cut} accepted and confirmed readings`);
      mustArrive.push(...life.filter((n) => n <= confirmed));
      accepted.push(...life);
      unconfirmedAtCuts += life.at(-1)! - confirmed;
      dropped += (await layer.powerCut()).unsyncedBytes;
    }
    await rig.proxy.refuse(false);
    const last = startDevice({ ...common, rate: 200, count: 50, nStart: accepted.at(-1)! + 1, after: 'drain', extraEnv: { ...layer.afterBootEnv, ...deviceEnv } });
    await last.waitForEvent((e) => e.closed === true, 60_000);
    await last.exited;
    mustArrive.push(...acceptedNumbers(last));
    accepted.push(...acceptedNumbers(last));

    const report = await rig.auditor.waitFor({ [clientId]: mustArrive }, 20_000);
    const lostUnconfirmed = rig.auditor.report({ [clientId]: accepted }).lost;
    t.diagnostic(
      `${accepted.length} accepted, ${mustArrive.length} confirmed by flush() or drained; lost ${lostUnconfirmed} of ${unconfirmedAtCuts} not yet confirmed at the cuts; ` +
        `${report.duplicates} duplicates; the cuts dropped ${dropped} unsynced bytes`,
    );
    assert.deepEqual(report.devices[clientId]?.missing, [], 'every reading flush() confirmed arrived');
    assert.equal(report.outOfOrder, 0, 'in order');
    assert.equal(report.duplicates, 0, 'exactly once');
    assert.ok(dropped > 0, 'the cuts dropped unsynced writes (else this proves no more than a SIGKILL)');
  } finally {
    await rig.proxy.refuse(false);
    await layer.close();
    slow?.remove();
  }
}

describe('power loss (the page cache is lost too)', () => {
  it('journal: every reading flush() confirmed arrives, exactly once and in order', (t) => cutsThenDrain(t, 'journal'));
  it('spill: every reading flush() confirmed arrives, exactly once and in order', (t) => cutsThenDrain(t, 'spill'));
  it('journal, on a slow card (8 ms per flush): the same', async (t) => {
    if (!slowFsyncShim().ok) return skipUnlessCI(t, `the slow-fsync shim: ${(slowFsyncShim() as { reason: string }).reason}`);
    await cutsThenDrain(t, 'journal', 8);
  });
});
