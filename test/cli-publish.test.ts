/** `holdfast publish` against a real broker: the simulator, a fleet, --stdin, --config and graceful signals. */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAuditor, startBroker, type AuditMessage, type Auditor, type Broker } from '@holdfast/testkit';
import { needsRoot, skipUnlessCI, sleep, tempDir, tinyTmpfs, waitUntil } from './helpers.js';
import { jsonLines, runCli, startCli } from './fixtures/cli-run.js';

let broker: Broker;
let auditor: Auditor;
const messages: AuditMessage[] = [];
const dir = tempDir('cli-publish');

/** Counts by the payload's device and per-run message number n, which every CLI payload carries. */
function byDeviceAndN(msg: AuditMessage): Array<{ device: string; seq: number }> {
  messages.push(msg);
  try {
    const body = JSON.parse(msg.payload.toString()) as { device?: unknown; n?: unknown };
    if (typeof body.device === 'string' && typeof body.n === 'number') return [{ device: body.device, seq: body.n }];
  } catch {
    // A stdin line.
  }
  return [];
}

before(async () => {
  broker = await startBroker();
  const protocolVersion = broker.protocolVersions.includes(5) ? 5 : 4;
  auditor = await startAuditor({ url: broker.url, topics: ['fleet/#', 'lines/#', 'cfg/#'], protocolVersion, extract: byDeviceAndN });
});
after(async () => {
  await auditor.close();
  await broker.close();
  dir.remove();
});

const protocolArgs = (): string[] => ['--protocol', broker.protocolVersions.includes(5) ? '5' : '4'];

describe('holdfast publish', () => {
  it('--count with a mixed fleet: exactly that many messages per device, all delivered, exit 0 once drained', async () => {
    const r = await runCli(
      ['publish', '--broker', broker.url, '--client-id', 'site', '--devices', '2', '--profile', 'mixed', '--interval', '20ms', '--count', '40', '--cache-dir', join(dir.path, 'fleet'), '--topic', 'fleet/{device}/{kind}', ...protocolArgs()],
      { timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const closed = jsonLines(r.stdout).find((l) => l.msg === 'closed');
    assert.ok(closed);
    assert.equal(closed.accepted, 80, '--count counts every message: telemetry, status and events');
    assert.equal(closed.delivered, closed.accepted);
    const report = await auditor.waitFor({ 'site-1': range(1, 40), 'site-2': range(1, 40) }, 10_000);
    assert.equal(report.lost, 0);
    assert.equal(report.duplicates, 0);
    assert.equal(report.outOfOrder, 0);

    const fleet = messages.filter((m) => m.topic.startsWith('fleet/'));
    assert.equal(fleet.length, 80, 'the broker got exactly --count messages per device');
    const bodies = fleet.map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);
    assert.deepEqual(new Set(bodies.map((b) => b.profile)), new Set(['sensor', 'camera']), 'the fleet cycles through profiles');
    for (const m of fleet) assert.match(m.topic, /^fleet\/site-[12]\/(telemetry|status|event)$/);
    const telemetry = bodies.filter((b) => b.kind === 'telemetry' && b.device === 'site-1');
    assert.ok(telemetry.length >= 30, `most of the 40 are telemetry (${telemetry.length})`);
    const temps = telemetry.map((b) => (b.values as Record<string, number>).temperature!);
    assert.ok(temps.every((t) => t > -40 && t < 85), 'sensor readings within physical bounds');
    assert.ok(new Set(temps).size > 1, 'readings vary (drift and noise)');
    const status = bodies.find((b) => b.kind === 'status' && b.device === 'site-1');
    assert.ok(status, 'the sensor sends a status every 30 readings');
    assert.equal(typeof (status.queue as Record<string, unknown>).delivered, 'number', 'status carries its own queue stats');
  });

  it('--stdin publishes one message per line and exits 0 at end of input', async () => {
    const r = await runCli(['publish', '--stdin', '--broker', broker.url, '--client-id', 'piper', '--cache-dir', join(dir.path, 'stdin'), '--topic', 'lines/{device}', ...protocolArgs()], {
      stdin: 'first line\n\nsecond line\nthird line\n',
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    await waitUntil(() => messages.filter((m) => m.topic === 'lines/piper').length >= 3, 5000, 'the three lines');
    assert.deepEqual(
      messages.filter((m) => m.topic === 'lines/piper').map((m) => m.payload.toString()),
      ['first line', 'second line', 'third line'],
    );
    assert.doesNotMatch(r.stdout, /first line/, 'payloads are never logged');
  });

  it('--config supplies library options and flags override them', async () => {
    const config = join(dir.path, 'publisher.json');
    writeFileSync(config, JSON.stringify({ broker: broker.url, clientId: 'from-config', durability: 'journal', cacheDir: join(dir.path, 'cfg') }));
    const r = await runCli(['publish', '--config', config, '--client-id', 'from-flag', '--count', '3', '--interval', '20ms', '--topic', 'cfg/{device}/{kind}', ...protocolArgs()], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const report = await auditor.waitFor({ 'from-flag': [1, 2, 3] }, 10_000);
    assert.equal(report.lost, 0);
    assert.ok(!messages.some((m) => m.topic.startsWith('cfg/from-config')));
  });

  it('a corrupt cache is quarantined, reported, listed by cache inspect, and publishing goes on', async () => {
    const cacheDir = join(dir.path, 'corrupt');
    mkdirSync(cacheDir);
    writeFileSync(join(cacheDir, 'cache.mdb'), Buffer.alloc(64 * 1024, 0x5a));
    const r = await runCli(['publish', '--broker', broker.url, '--client-id', 'phoenix', '--cache-dir', cacheDir, '--count', '3', '--interval', '20ms', '--topic', 'fleet/{device}/{kind}', ...protocolArgs()], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const quarantine = jsonLines(r.stdout).find((l) => l.msg === 'quarantine');
    assert.ok(quarantine, `a quarantine log line; stdout: ${r.stdout}`);
    assert.match(String(quarantine.movedTo), /cache\.mdb\.corrupt-/);
    const report = await auditor.waitFor({ phoenix: [1, 2, 3] }, 10_000);
    assert.equal(report.lost, 0);
    const inspect = await runCli(['cache', 'inspect', '--cache-dir', cacheDir, '--json']);
    assert.equal(inspect.code, 0, inspect.stderr);
    const quarantined = (JSON.parse(inspect.stdout) as { quarantined: string[] }).quarantined;
    assert.equal(quarantined.length, 1);
    assert.match(quarantined[0]!, /^cache\.mdb\.corrupt-/);
  });

  it('piped, as under systemd: an 8 s broker hang (SIGSTOP) with stats every 10 s is logged as it starts and as it ends', async () => {
    const cli = startCli(['publish', '--broker', broker.url, '--client-id', 'hang', '--cache-dir', join(dir.path, 'hang'), '--interval', '100ms', '--stats-every', '10s', '--topic', 'fleet/{device}/{kind}', ...protocolArgs()]);
    try {
      await cli.waitForLine((l) => l.includes('"msg":"connect"'), 20_000);
      await sleep(500);
      broker.pause();
      const pausedAt = performance.now();
      try {
        // The default timeoutMs is 10 s and keepalive 30 s: neither the state nor the connection changes.
        const offline = JSON.parse(await cli.waitForLine((l) => l.includes('"msg":"offline"'), 6000)) as Record<string, unknown>;
        assert.equal(offline.level, 'warn');
        assert.equal(offline.device, 'hang');
        assert.equal(offline.cause, 'exchange-overdue');
        await sleep(8000 - (performance.now() - pausedAt));
      } finally {
        broker.resume();
      }
      const online = JSON.parse(await cli.waitForLine((l) => l.includes('"msg":"online"') && l.includes('exchange-overdue'), 10_000)) as Record<string, unknown>;
      assert.ok(Number(online.offlineMs) >= 7000, `the hang's duration: ${JSON.stringify(online)}`);
    } finally {
      broker.resume();
      cli.kill('SIGTERM');
    }
    const r = await cli.done;
    assert.equal(r.code, 0, r.stderr);
    const stats = jsonLines(r.stdout).filter((l) => l.msg === 'stats');
    assert.ok(stats.every((l) => typeof l.offline === 'number'), 'the stats line counts the publishers offline');
  });

  it('journal on a full disk: the refused messages are logged, not thrown, and the command keeps running', async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const disk = tinyTmpfs('cli-full');
    // Room to open the cache, and for the intake log to fill within seconds.
    writeFileSync(join(disk.path, 'filler'), Buffer.alloc(600 * 1024));
    // No broker: everything waits on the disk.
    const cli = startCli(['publish', '--broker', 'mqtt://127.0.0.1:1', '--client-id', 'full', '--durability', 'journal', '--cache-dir', join(disk.path, 'cache'), '--interval', '10ms', '--stats-every', '500ms', '--topic', 'fleet/{device}/{kind}', ...protocolArgs()]);
    try {
      // The intake log full: from here publish() refuses what it cannot log.
      const failed = JSON.parse(await cli.waitForLine((l) => l.includes('HOLDFAST_CACHE_WRITE_FAILED') && l.includes('intake log'), 30_000)) as Record<string, unknown>;
      assert.equal(failed.level, 'error');
      // Still publishing (and refusing) a while later: a stats line after the failure.
      const seen = cli.stdout().length;
      await waitUntil(() => cli.stdout().slice(seen).includes('"msg":"stats"'), 5000, 'a stats line after the disk filled');
      assert.equal(cli.child.exitCode, null, `the command is still running; stderr: ${cli.stderr()}`);
    } finally {
      cli.kill('SIGKILL');
      await cli.done;
      disk.remove();
    }
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} closes gracefully: exit 0, nothing accepted is unaccounted for`, async () => {
      const cli = startCli(['publish', '--broker', broker.url, '--client-id', `sig-${signal}`, '--cache-dir', join(dir.path, signal), '--interval', '10ms', '--topic', 'fleet/{device}/{kind}', ...protocolArgs()]);
      const device = `sig-${signal}`;
      await cli.waitForLine((l) => l.includes('"msg":"started"'), 20_000);
      await waitUntil(() => auditor.arrivals(device).length > 0, 10_000, 'a first reading at the broker');
      cli.kill(signal);
      const r = await cli.done;
      assert.equal(r.code, 0, r.stderr);
      const logs = jsonLines(r.stdout);
      assert.ok(logs.some((l) => l.msg === 'stopping' && l.signal === signal));
      const closed = logs.find((l) => l.msg === 'closed');
      assert.ok(closed);
      // Judged outside the publisher: what reached the broker, plus what its cache holds on disk.
      const accepted = closed.accepted as number;
      const report = await auditor.waitFor({ [device]: range(1, closed.delivered as number) }, 10_000);
      assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
      const arrived = auditor.arrivals(device);
      const inspect = await runCli(['cache', 'inspect', '--cache-dir', join(dir.path, signal), '--json']);
      assert.equal(inspect.code, 0, inspect.stderr);
      const cached = (JSON.parse(inspect.stdout) as { messages: number }).messages;
      assert.equal(arrived.length + cached, accepted, `each of the ${accepted} accepted readings arrived (${arrived.length}) or is in the cache (${cached})`);
    });
  }
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
