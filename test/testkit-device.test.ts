import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawnDevice } from '@holdfast/testkit';

// A stand-in device: prints JSON events (and some noise), counts on a file "cache".
const SCRIPT = `
import { readFileSync, writeFileSync } from 'node:fs';
const cache = process.argv[2];
let n = 0;
try { n = Number(readFileSync(cache, 'utf8')); } catch {}
console.log(JSON.stringify({ type: 'ready', resumedAt: n, mode: process.env.MODE }));
console.log('plain text line');
process.stderr.write('device stderr\\n');
if (process.env.MODE === 'crash') process.exit(3);
setInterval(() => {
  n++;
  writeFileSync(cache, String(n));
  console.log(JSON.stringify({ type: 'tick', n }));
}, 10);
`;

describe('device process', () => {
  let dir: string;
  let script: string;
  let cache: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'testkit-device-'));
    script = path.join(dir, 'device.mjs');
    cache = path.join(dir, 'cache.txt');
    writeFileSync(script, SCRIPT);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('parses JSON lines, survives SIGKILL and restarts on the same cache', async () => {
    const first = spawnDevice({ script, args: [cache], env: { MODE: 'run' } });
    const seen: Array<Record<string, unknown>> = [];
    first.on('event', (e) => seen.push(e));
    const ready = await first.waitForEvent((e) => e['type'] === 'ready', 5_000);
    assert.deepEqual(ready, { type: 'ready', resumedAt: 0, mode: 'run' });
    await first.waitForEvent((e) => e['type'] === 'tick' && (e['n'] as number) >= 5, 5_000);
    const exit = await first.kill();
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    assert.deepEqual(await first.exited, exit);
    assert.ok(first.lines.includes('plain text line'));
    assert.match(first.stderr(), /device stderr/);
    assert.ok(first.events.length >= 6 && seen.length <= first.events.length);

    const lastTick = first.events.filter((e) => e['type'] === 'tick').at(-1)!['n'] as number;
    const second = spawnDevice({ script, args: [cache] });
    try {
      const resumed = await second.waitForEvent((e) => e['type'] === 'ready', 5_000);
      // The file may be one tick ahead of the last line we read before the kill.
      assert.ok((resumed['resumedAt'] as number) >= lastTick, `resumed at ${String(resumed['resumedAt'])}, last tick ${lastTick}`);
      assert.notEqual(second.pid, first.pid);
    } finally {
      assert.equal((await second.kill('SIGTERM')).signal, 'SIGTERM');
    }
  });

  it('waitForEvent rejects with diagnostics when the device exits first', async () => {
    const dev = spawnDevice({ script, args: [cache], env: { MODE: 'crash' } });
    await assert.rejects(dev.waitForEvent((e) => e['type'] === 'tick', 5_000), /exited \(code 3\).*\n[\s\S]*device stderr/);
    assert.deepEqual(await dev.exited, { code: 3, signal: null });
    await assert.rejects(dev.waitForEvent((e) => e['type'] === 'never', 5_000), /exited/);
  });

  it('waitForEvent times out with what it saw', async () => {
    const dev = spawnDevice({ script, args: [cache] });
    try {
      await assert.rejects(dev.waitForEvent((e) => e['type'] === 'never', 200), /no matching event within 200 ms; \d+ events so far/);
    } finally {
      await dev.kill();
    }
  });

  it('runs TypeScript through execArgv', async () => {
    const ts = path.join(dir, 'device.ts');
    writeFileSync(ts, `const answer: number = 42;\nconsole.log(JSON.stringify({ answer }));\n`);
    // --import resolves tsx from cwd: the test package has it.
    const dev = spawnDevice({ script: ts, execArgv: ['--import', 'tsx'], cwd: process.cwd() });
    assert.deepEqual(await dev.waitForEvent((e) => 'answer' in e, 10_000), { answer: 42 });
    assert.deepEqual(await dev.exited, { code: 0, signal: null });
  });
});
