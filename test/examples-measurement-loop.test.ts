/** examples/measurement-loop.ts runs for real: a bounded loop drains and exits; SIGTERM closes gracefully. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { startAuditor, startBroker, type Auditor, type Broker } from '@holdfast/testkit';
import { tempDir, waitUntil } from './helpers.js';

const example = fileURLToPath(new URL('../examples/measurement-loop.ts', import.meta.url));
let broker: Broker;
let auditor: Auditor;

before(async () => {
  broker = await startBroker();
  // The example's readings carry no counter: its timestamp t (one reading per period) stands in.
  auditor = await startAuditor({
    url: broker.url,
    topics: 'sensors/#',
    protocolVersion: 4,
    extract: (msg) => {
      const body = JSON.parse(msg.payload.toString()) as { device: string; t: number };
      return [{ device: body.device, seq: body.t }];
    },
  });
});
after(async () => {
  await auditor.close();
  await broker.close();
});

function runExample(env: Record<string, string>): { exited: Promise<{ code: number | null; stdout: string }>; started: Promise<void>; kill(signal: NodeJS.Signals): void } {
  const child = spawn(process.execPath, ['--import', 'tsx', example], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout.includes('"msg":"started"')) markStarted();
  });
  return {
    started,
    exited: new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout }))),
    kill: (signal) => child.kill(signal),
  };
}

it('a bounded loop publishes every reading, drains and exits 0', async () => {
  const dir = tempDir('example-loop');
  try {
    const run = runExample({ HOLDFAST_BROKER: broker.url, HOLDFAST_CLIENT_ID: 'loop-bounded', HOLDFAST_CACHE_DIR: dir.path, LOOP_PERIOD_MS: '10', LOOP_COUNT: '50' });
    const { code, stdout } = await run.exited;
    assert.equal(code, 0);
    const stopped = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.msg === 'stopped');
    assert.deepEqual({ accepted: stopped?.accepted, delivered: stopped?.delivered, cached: stopped?.cached }, { accepted: 50, delivered: 50, cached: 0 });
    await auditor.waitForCount(50, 10_000);
    const mine = auditor.arrivals('loop-bounded');
    assert.equal(mine.length, 50, 'every reading arrived, once');
    assert.ok(mine.every((t, i) => i === 0 || t > mine[i - 1]!), 'in order');
  } finally {
    dir.remove();
  }
});

it('SIGTERM closes gracefully and exits 0', async () => {
  const dir = tempDir('example-loop-term');
  try {
    const run = runExample({ HOLDFAST_BROKER: broker.url, HOLDFAST_CLIENT_ID: 'loop-term', HOLDFAST_CACHE_DIR: dir.path, LOOP_PERIOD_MS: '20' });
    await run.started;
    await waitUntil(() => auditor.arrivals('loop-term').length > 0, 10_000, 'a reading from the running loop');
    run.kill('SIGTERM');
    const { code, stdout } = await run.exited;
    assert.equal(code, 0);
    assert.match(stdout, /"msg":"stopped"/);
  } finally {
    dir.remove();
  }
});
