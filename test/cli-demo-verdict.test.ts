/**
 * The demo's verdict and screen, as pure functions: PASS only with nothing lost, duplicated or reordered;
 * delivered counted from what reached the subscriber; nothing stale shown while the device is off.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { passed, verdictLine, verdictOf } from '../packages/cli/dist/demo/verdict.js';
import { deviceText, plural, type DemoView } from '../packages/cli/dist/demo/screen.js';

const clean = { lost: 0, duplicates: 0, outOfOrder: 0 };

describe('demo verdict', () => {
  it('PASS needs lost, duplicates and reordered all 0', () => {
    const v = verdictOf([1, 2, 3], [1, 2, 3], clean);
    assert.equal(verdictLine(v), 'PASS: accepted 3, delivered 3, lost 0, duplicates 0, reordered 0');
    for (const fault of [{ lost: 1 }, { duplicates: 1 }, { outOfOrder: 1 }]) {
      const bad = verdictOf([1, 2, 3], [1, 2, 3], { ...clean, ...fault });
      assert.equal(passed(bad), false, JSON.stringify(fault));
      assert.match(verdictLine(bad), /^FAIL: /);
    }
  });

  it('delivered is what arrived at the subscriber, including a reading taken at the power cut before the device confirmed it', () => {
    const v = verdictOf([1, 2, 3], [1, 2, 3, 4], clean);
    assert.deepEqual(v, { accepted: 3, delivered: 4, lost: 0, duplicates: 0, outOfOrder: 0, unconfirmed: 1 });
    assert.equal(verdictLine(v), 'PASS: accepted 3, delivered 4 (1 taken by publish() as the power was cut, before the device could confirm it), lost 0, duplicates 0, reordered 0');
    assert.equal(verdictOf([1, 2, 3], [1, 3, 3], { ...clean, lost: 1, duplicates: 1 }).delivered, 2, 'a duplicate is not a delivery');
  });
});

describe('demo screen', () => {
  const view: DemoView = { elapsedMs: 0, durationMs: 30_000, phase: '', device: 'running', state: 'caching', offline: true, offlineCause: 'disconnected', offlineForMs: 1234, accepted: 10, delivered: 5, powerCuts: 0, linkCuts: 1 };

  it('shows the device offline with the cause, and nothing of its last state while it is powered off', () => {
    assert.equal(deviceText(view), 'caching, OFFLINE (not connected, 1.2 s)');
    assert.equal(deviceText({ ...view, offlineCause: 'exchange-overdue' }), 'caching, OFFLINE (the broker does not answer, 1.2 s)');
    assert.equal(deviceText({ ...view, offline: false }), 'caching, online');
    assert.equal(deviceText({ ...view, device: 'powered off' }), 'POWERED OFF (SIGKILL), restarting on the same cache');
  });

  it('counts in words that agree with the number', () => {
    assert.equal(plural(1, 'cached reading'), '1 cached reading');
    assert.equal(plural(0, 'cached reading'), '0 cached readings');
    assert.equal(plural(33, 'cached reading'), '33 cached readings');
  });
});
