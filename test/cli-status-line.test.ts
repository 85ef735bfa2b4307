/** The terminal status line of `holdfast publish`: an outage is shown up front, with its cause and length. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { statusText, type Totals } from '../packages/cli/dist/publish/reporter.js';

const totals: Totals = { states: 'direct', connected: 1, offline: 0, offlineCause: '', offlineForMs: 0, accepted: 40, memory: 2, cached: 0, delivered: 38, spilled: 0, reconnects: 0 };

it('says online, or OFFLINE with the cause and how long, while the state alone still says direct', () => {
  assert.equal(statusText(totals, 1), 'direct | online 1/1 | accepted 40 | memory 2 | cached 0 | delivered 38 | reconnects 0');
  const hung = { ...totals, offline: 1, offlineCause: 'exchange-overdue', offlineForMs: 3400 };
  assert.equal(statusText(hung, 2), 'direct | OFFLINE 1/2 (exchange overdue, 3 s) | accepted 40 | memory 2 | cached 0 | delivered 38 | reconnects 0');
  assert.match(statusText({ ...hung, offlineCause: 'disconnected' }, 1), /\| OFFLINE 1\/1 \(disconnected, 3 s\) \|/);
});
