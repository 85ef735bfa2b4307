/**
 * Guarantee 3: exactly once where the broker allows it. The link loses the broker's PUBCOMP, so the
 * broker has already released the message to subscribers (Mosquitto does on PUBREL) while the device
 * still has it in flight; then the device is power-cut (SIGKILL). Restarted on the same cache, it must
 * resume that exchange from the persisted outgoing store (resend the PUBREL with the same packet id)
 * and must never also send the message fresh from the cache, which would deliver it twice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auditedBrokerWithProxy, acceptedNumbers, startDevice, tempDir } from './helpers.js';

const rig = auditedBrokerWithProxy();

async function powerCutWithPubcompLost(opts: { clientId: string; durability: 'spill' | 'journal'; cleanSession: boolean }) {
  const cache = tempDir('exactly-once');
  const common = { broker: rig.proxy.url, clientId: opts.clientId, cacheDir: cache.path, protocol: rig.protocol, durability: opts.durability, cleanSession: opts.cleanSession, timeoutMs: 300 };
  const first = startDevice({ ...common, rate: 100, count: 40, after: 'flush' });
  let second: ReturnType<typeof startDevice> | undefined;
  try {
    await first.waitForEvent((e) => e.open === true, 15_000);
    await first.waitForEvent((e) => typeof e.n === 'number' && e.n >= 10, 10_000);
    rig.proxy.holdDownstreamAt('pubcomp');
    // Once every accepted reading is durable (spill mode spills the stuck exchange after timeoutMs),
    // cut the power while the PUBCOMP is still held.
    await first.waitForEvent((e) => e.flushed === true, 20_000);
    assert.ok(rig.proxy.holdingDownstream, 'a PUBCOMP was held back');
    await first.kill('SIGKILL');
    rig.proxy.holdDownstreamAt(undefined);

    second = startDevice({ ...common, rate: 100, count: 10, nStart: 41, after: 'drain' });
    await second.waitForEvent((e) => e.drained === true, 30_000);
    const expected = [...acceptedNumbers(first), ...acceptedNumbers(second)];
    assert.equal(expected.length, 50);
    // The settle window after the last expected reading is when a late duplicate would arrive.
    return await rig.auditor.waitFor({ [opts.clientId]: expected }, 15_000, { settleMs: 1000 });
  } finally {
    rig.proxy.holdDownstreamAt(undefined);
    await first.kill().catch(() => undefined);
    await second?.kill().catch(() => undefined);
    cache.remove();
  }
}

describe('exactly once across a power cut', () => {
  it('spill mode: the message whose PUBCOMP was lost is delivered once', async () => {
    const report = await powerCutWithPubcompLost({ clientId: 'dev-eo-spill', durability: 'spill', cleanSession: false });
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
  });

  it('journal mode: the message whose PUBCOMP was lost is delivered once', async () => {
    const report = await powerCutWithPubcompLost({ clientId: 'dev-eo-journal', durability: 'journal', cleanSession: false });
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
  });

  it('clean session: at least once — nothing lost, at most the in-flight message twice', async () => {
    const report = await powerCutWithPubcompLost({ clientId: 'dev-eo-clean', durability: 'spill', cleanSession: true });
    assert.equal(report.lost, 0);
    assert.ok(report.duplicates <= 1, `duplicates ${report.duplicates}`);
  });
});
