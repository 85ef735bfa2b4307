/**
 * The CLI examples: examples/cyclic-publisher.sh and examples/systemd/holdfast-publisher.service.
 * The unit is checked by systemd-analyze where available, and its ExecStart is run as systemd would
 * run it, to show SIGTERM ends in a graceful close with exit code 0 well within TimeoutStopSec.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startAuditor, startBroker, type AuditMessage, type Auditor, type Broker } from '@holdfast/testkit';
import { skipUnlessCI, tempDir, waitUntil } from './helpers.js';
import { cliBin, jsonLines, runCli } from './fixtures/cli-run.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

const examples = fileURLToPath(new URL('../examples/', import.meta.url));
const unitPath = join(examples, 'systemd', 'holdfast-publisher.service');
const scriptPath = join(examples, 'cyclic-publisher.sh');
const unit = readFileSync(unitPath, 'utf8');

let broker: Broker;
let auditor: Auditor;
const received: AuditMessage[] = [];
const dir = tempDir('examples-cli');

before(async () => {
  broker = await startBroker();
  const protocolVersion = broker.protocolVersions.includes(5) ? 5 : 4;
  auditor = await startAuditor({
    url: broker.url,
    topics: 'sensors/#',
    protocolVersion,
    // Every CLI payload carries its device and a per-run message number n.
    extract: (msg) => {
      received.push(msg);
      const body = JSON.parse(msg.payload.toString()) as { device?: unknown; n?: unknown };
      return typeof body.device === 'string' && typeof body.n === 'number' ? [{ device: body.device, seq: body.n }] : [];
    },
  });
});
after(async () => {
  await auditor.close();
  await broker.close();
  dir.remove();
});

/** Resolves once the broker has passed on a reading from `clientId` (the publisher is really running). */
function sentBy(clientId: string): Promise<void> {
  return waitUntil(() => received.some((m) => m.topic.startsWith(`sensors/${clientId}/`)), 20_000, `a reading from ${clientId}`);
}

/** Runs a command; `onStarted` fires once stdout shows the publisher started. */
function run(command: string, args: string[], env: Record<string, string>, onStarted?: (child: ReturnType<typeof spawn>) => void) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let started = false;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (!started && stdout.includes('"msg":"started"')) {
      started = true;
      onStarted?.(child);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; stoppedAt: number }>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, stoppedAt: Date.now() });
    });
  });
}

/** The value of a `Key=value` line of the unit's [Service] section. */
function directive(key: string): string | undefined {
  return unit.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);
}

function seconds(value: string | undefined): number {
  const m = /^(\d+)(s|min)?$/.exec(value ?? '');
  assert.ok(m, `a time span: ${value}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

describe('examples/systemd/holdfast-publisher.service', () => {
  it('has restart policy, stop timeout, secrets, state directory and hardening', () => {
    assert.equal(directive('Restart'), 'on-failure');
    assert.ok(seconds(directive('RestartSec')) >= 1);
    // A graceful close is bounded by closeTimeoutMs (5 s) plus 2 s before the worker is stopped.
    assert.ok(seconds(directive('TimeoutStopSec')) >= 10, 'TimeoutStopSec covers a graceful close');
    assert.match(directive('EnvironmentFile') ?? '', /^\/etc\/holdfast\//);
    assert.ok(directive('User'));
    assert.equal(directive('StateDirectory'), 'holdfast');
    assert.equal(directive('NoNewPrivileges'), 'yes');
    assert.equal(directive('ProtectSystem'), 'strict');
    assert.equal(directive('ReadWritePaths'), '%S/holdfast');
    assert.match(directive('ExecStart') ?? '', /--cache-dir %S\/holdfast/);
    assert.doesNotMatch(unit, /--password\b/, 'no password on the command line');
  });

  it('systemd-analyze verify accepts it', async (t) => {
    const installed = await promisify(execFile)('systemd-analyze', ['--version']).then(() => true, () => false);
    if (!installed) return skipUnlessCI(t, 'systemd-analyze is not on PATH (Debian: apt-get install systemd)');
    const { stderr } = await promisify(execFile)('systemd-analyze', ['verify', unitPath]).catch((err: { stderr?: string; message: string }) => {
      assert.fail(`systemd-analyze verify rejected the unit: ${err.stderr ?? err.message}`);
    });
    assert.doesNotMatch(stderr, new RegExp(`${unitPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+`), `no complaint about the unit: ${stderr}`);
  });

  it('its ExecStart, sent SIGTERM, closes gracefully and exits 0 within TimeoutStopSec', async () => {
    const stateDir = join(dir.path, 'state');
    // As systemd runs it: %S is the state root, the environment comes from the EnvironmentFile.
    const words = (directive('ExecStart') ?? '').replaceAll('%S', stateDir).split(/\s+/);
    assert.deepEqual(words.slice(0, 3), ['/usr/bin/env', 'holdfast', 'publish']);
    const env = { HOLDFAST_BROKER: broker.url, HOLDFAST_CLIENT_ID: 'unit-test', HOLDFAST_PROTOCOL_VERSION: broker.protocolVersions.includes(5) ? '5' : '4' };
    let signalledAt = 0;
    const r = await run(process.execPath, [cliBin, ...words.slice(2)], env, (child) => {
      void sentBy('unit-test').then(() => {
        signalledAt = Date.now();
        child.kill('SIGTERM');
      });
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(signalledAt > 0, 'the publisher started');
    assert.ok(r.stoppedAt - signalledAt < seconds(directive('TimeoutStopSec')) * 1000);
    const logs = jsonLines(r.stdout);
    assert.ok(logs.some((l) => l.msg === 'stopping' && l.signal === 'SIGTERM'));
    const closed = logs.find((l) => l.msg === 'closed');
    assert.ok(closed && (closed.accepted as number) >= 1);
    assert.ok(existsSync(join(stateDir, 'holdfast', 'cache.mdb')), 'the cache is in the state directory');
    // Nothing unaccounted for, judged outside the publisher: what reached the broker plus what its cache holds.
    const report = await auditor.waitFor({ 'unit-test': range(closed.delivered as number) }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    const inspect = await runCli(['cache', 'inspect', '--cache-dir', join(stateDir, 'holdfast'), '--json']);
    assert.equal(inspect.code, 0, inspect.stderr);
    const cached = (JSON.parse(inspect.stdout) as { messages: number }).messages;
    assert.equal(auditor.arrivals('unit-test').length + cached, closed.accepted);
  });
});

describe('examples/cyclic-publisher.sh', () => {
  const cli = `${process.execPath} ${cliBin}`;

  it('publishes COUNT messages through the CLI and exits 0', async () => {
    const r = await run('sh', [scriptPath], {
      HOLDFAST_CLI: cli,
      HOLDFAST_BROKER: broker.url,
      HOLDFAST_CLIENT_ID: 'cyclic-test',
      HOLDFAST_CACHE_DIR: join(dir.path, 'cyclic'),
      INTERVAL: '50ms',
      COUNT: '5',
    });
    assert.equal(r.code, 0, r.stderr);
    // Telemetry, and an anomaly event if the simulated sensor had one: five messages in all.
    const sent = (): AuditMessage[] => received.filter((m) => m.topic.startsWith('sensors/cyclic-test/'));
    await waitUntil(() => sent().length >= 5, 5000, 'five messages');
    assert.equal(sent().length, 5);
  });

  it('passes SIGTERM to the publisher (exec), which closes with exit code 0', async () => {
    const r = await run(
      'sh',
      [scriptPath],
      { HOLDFAST_CLI: cli, HOLDFAST_BROKER: broker.url, HOLDFAST_CLIENT_ID: 'cyclic-term', HOLDFAST_CACHE_DIR: join(dir.path, 'cyclic-term'), INTERVAL: '100ms' },
      (child) => void sentBy('cyclic-term').then(() => child.kill('SIGTERM')),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(jsonLines(r.stdout).some((l) => l.msg === 'closed'));
  });
});
