/**
 * /health and /metrics over real HTTP, for a real client on a real broker: healthy, degraded (cache
 * above 80% of maxCache, disk nearly full), unhealthy (not connected, closed), 404/405, the metrics
 * and their values, and that neither endpoint ever shows a payload or a secret.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCodes, HoldfastError, LATENCY_EVENT, open, startHealthServer, type HealthReport, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { startBroker, startLinkProxy, type Broker, type LinkProxy } from '@holdfast/testkit';
import { onFreePorts, tempDir, waitUntil } from './helpers.js';
// Not exported: the pure rule function, imported from the build to test the one rule no real fault reaches here.
import { evaluateHealth } from '../packages/holdfast/dist/health-status.js';

let broker: Broker;
let proxy: LinkProxy;
let protocol: 4 | 5;
const dirs: Array<{ remove(): void }> = [];

before(async () => {
  broker = await startBroker();
  proxy = await startLinkProxy({ targetPort: broker.port });
  protocol = broker.protocolVersions.includes(5) ? 5 : 4;
});
after(async () => {
  await proxy.close();
  await broker.close();
  for (const dir of dirs) dir.remove();
});

const SECRET_PASSWORD = 'pw-must-never-show-9f2c';
const SECRET_PAYLOAD = 'payload-must-never-show-71ab';

async function client(id: string, extra: Partial<HoldfastOptions> = {}): Promise<{ client: HoldfastClient; cacheDir: string }> {
  const dir = tempDir(`health-${id}`);
  dirs.push(dir);
  const c = await open({
    broker: proxy.url,
    clientId: id,
    cacheDir: dir.path,
    protocolVersion: protocol,
    timeoutMs: 300,
    reconnect: { minMs: 100, maxMs: 400 },
    connectTimeoutMs: 1000,
    username: 'device',
    password: SECRET_PASSWORD,
    ...extra,
  });
  return { client: c, cacheDir: dir.path };
}

async function get(port: number, path: string, method = 'GET'): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

async function health(port: number): Promise<{ status: number; report: HealthReport; body: string }> {
  const res = await get(port, '/health');
  return { status: res.status, report: JSON.parse(res.body) as HealthReport, body: res.body };
}

/** The value of one sample line of the exposition text, e.g. metric('x_total') or metric('x{state="direct"}'). */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

// Disk rules off unless a test is about them, so a nearly full CI disk cannot fail the others.
const NO_DISK_RULE = { diskMinFreeBytes: 0, diskMinFreeRatio: 0 };

describe('/health', () => {
  it('is healthy (200) while connected, with the stats as JSON and no payload or password', async () => {
    const { client: c, cacheDir } = await client('health-ok');
    const server = await startHealthServer(c, { port: 0, cacheDir, ...NO_DISK_RULE });
    try {
      assert.equal(server.host, '127.0.0.1', 'bound to loopback by default');
      await waitUntil(() => c.stats().connected, 10_000, 'connected');
      for (let i = 0; i < 5; i++) c.publish('sensors/health-ok', `${SECRET_PAYLOAD}-${i}`);
      await c.drained();
      const { status, report, body } = await health(server.port);
      assert.equal(status, 200);
      assert.equal(report.status, 'healthy');
      assert.deepEqual(report.reasons, []);
      assert.equal(report.stats.connected, true);
      assert.equal(report.stats.accepted, 5);
      assert.equal(report.stats.delivered, 5);
      assert.ok(report.disk && report.disk.totalBytes > 0 && report.disk.freeBytes >= 0);
      assert.ok(!body.includes(SECRET_PAYLOAD), 'no payload in /health');
      assert.ok(!body.includes(SECRET_PASSWORD), 'no password in /health');
    } finally {
      await server.close();
      await c.close();
    }
  });

  it('is unhealthy (503) while the broker is unreachable, and healthy again after', async () => {
    const { client: c, cacheDir } = await client('health-down');
    const server = await startHealthServer(c, { port: 0, cacheDir, ...NO_DISK_RULE });
    try {
      await waitUntil(() => c.stats().connected, 10_000, 'connected');
      await proxy.refuse(true);
      await waitUntil(() => !c.stats().connected, 10_000, 'disconnected');
      const down = await health(server.port);
      assert.equal(down.status, 503);
      assert.equal(down.report.status, 'unhealthy');
      assert.match(down.report.reasons.join(';'), /^offline for \d+\.\d s: not connected to the broker/, down.body);
      await proxy.refuse(false);
      await waitUntil(() => c.stats().connected, 10_000, 'reconnected');
      // The worker sets connected and clears the outage in two steps the app thread may see apart.
      let last = 0;
      await waitUntil(async () => (last = (await health(server.port)).status) === 200, 5000, 'healthy again').catch((err: Error) => {
        throw new Error(`${err.message}: /health said ${last}`);
      });
    } finally {
      await proxy.refuse(false);
      await server.close();
      await c.close();
    }
  });

  it('is degraded (200) above 80% of maxCache messages or bytes', async () => {
    // timeoutMs 10 s: an exchange over the slow link below is never overdue, so the client is online.
    const { client: c, cacheDir } = await client('health-full', { timeoutMs: 10_000, connectTimeoutMs: 5000 });
    const server = await startHealthServer(c, { port: 0, cacheDir, maxCache: { messages: 10, bytes: 1 << 30 }, ...NO_DISK_RULE });
    const byBytes = await startHealthServer(c, { port: 0, cacheDir, maxCache: { messages: 1_000_000, bytes: 4096 }, ...NO_DISK_RULE });
    try {
      // Spilled while the broker is unreachable, then drained one a second over a 250 ms link: online
      // (offline would be unhealthy) with the cache still nearly full.
      await proxy.refuse(true);
      for (let i = 0; i < 10; i++) c.publish('sensors/health-full', 'x'.repeat(500));
      await c.flush();
      proxy.setLatency(250);
      await proxy.refuse(false);
      await waitUntil(() => !c.stats().offline && c.stats().cached.messages >= 9, 10_000, 'online with the cache still full');
      const full = await health(server.port);
      assert.equal(full.status, 200, full.body);
      assert.equal(full.report.status, 'degraded');
      assert.match(full.report.reasons.join(';'), /cache holds (9|10) of 10 messages/);
      const bytes = await health(byBytes.port);
      assert.equal(bytes.report.status, 'degraded');
      assert.match(bytes.report.reasons.join(';'), /of 4096 bytes/);
      proxy.setLatency(0);
      await c.drained();
      assert.equal((await health(server.port)).report.status, 'healthy');
    } finally {
      proxy.setLatency(0);
      await proxy.refuse(false);
      await byBytes.close();
      await server.close();
      await c.close();
    }
  });

  it('is degraded (200) when the cache disk is nearly full', async () => {
    const { client: c, cacheDir } = await client('health-disk');
    const server = await startHealthServer(c, { port: 0, cacheDir, diskMinFreeBytes: Number.MAX_SAFE_INTEGER });
    const byRatio = await startHealthServer(c, { port: 0, cacheDir, diskMinFreeBytes: 0, diskMinFreeRatio: 1.01 });
    try {
      await waitUntil(() => c.stats().connected, 10_000, 'connected');
      for (const port of [server.port, byRatio.port]) {
        const { status, report } = await health(port);
        assert.equal(status, 200);
        assert.equal(report.status, 'degraded');
        assert.match(report.reasons.join(';'), /cache disk nearly full/);
      }
    } finally {
      await byRatio.close();
      await server.close();
      await c.close();
    }
  });

  it('is unhealthy (503) once the client is closed', async () => {
    const { client: c, cacheDir } = await client('health-closed');
    const server = await startHealthServer(c, { port: 0, cacheDir, ...NO_DISK_RULE });
    try {
      await c.close();
      const { status, report } = await health(server.port);
      assert.equal(status, 503);
      assert.ok(report.reasons.includes('client closed'));
    } finally {
      await server.close();
    }
  });
});

describe('/health and /metrics routing', () => {
  let c: HoldfastClient;
  let port: number;
  let close: () => Promise<void>;
  before(async () => {
    const made = await client('routing');
    c = made.client;
    const server = await startHealthServer(c, { port: 0, cacheDir: made.cacheDir, ...NO_DISK_RULE });
    port = server.port;
    close = () => server.close();
  });
  after(async () => {
    await close();
    await c.close();
  });

  it('answers 404 for other paths', async () => {
    for (const path of ['/', '/healthz', '/metrics/x', '/health/']) assert.equal((await get(port, path)).status, 404, path);
  });

  it('answers 405 with Allow for other methods', async () => {
    for (const [path, method] of [['/health', 'POST'], ['/metrics', 'PUT'], ['/health', 'DELETE']] as const) {
      const res = await get(port, path, method);
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
    }
  });

  it('answers HEAD without a body, and ignores a query string', async () => {
    const head = await get(port, '/metrics', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.notEqual((await get(port, '/health?verbose=1')).status, 404);
  });

  it('refuses to start on a port in use with a typed error', async () => {
    await assert.rejects(startHealthServer(c, { port }), (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_OPTION && /EADDRINUSE/.test(err.message));
  });
});

describe('/metrics', () => {
  it('exposes the stats as Prometheus metrics in a registry of its own', async () => {
    const a = await client('metrics-a');
    const b = await client('metrics-b');
    // Two servers in one process: a shared global registry would refuse the second.
    const server = await startHealthServer(a.client, { port: 0, cacheDir: a.cacheDir, ...NO_DISK_RULE });
    const other = await startHealthServer(b.client, { port: 0, cacheDir: b.cacheDir, ...NO_DISK_RULE });
    try {
      await waitUntil(() => a.client.stats().connected, 10_000, 'connected');
      for (let i = 0; i < 7; i++) a.client.publish('sensors/metrics-a', `${SECRET_PAYLOAD}-${i}`);
      await a.client.drained();
      const res = await get(server.port, '/metrics');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = res.body;
      assert.equal(metric(text, 'holdfast_messages_accepted_total'), 7);
      assert.equal(metric(text, 'holdfast_messages_delivered_total'), 7);
      for (const name of ['spilled', 'evicted', 'dead_lettered']) assert.equal(metric(text, `holdfast_messages_${name}_total`), 0, name);
      assert.equal(metric(text, 'holdfast_cache_messages'), 0);
      assert.equal(metric(text, 'holdfast_cache_bytes'), 0);
      assert.equal(metric(text, 'holdfast_cache_oldest_age_seconds'), 0);
      assert.equal(metric(text, 'holdfast_reconnects_total'), 0);
      assert.equal(metric(text, 'holdfast_connected'), 1);
      assert.equal(metric(text, 'holdfast_state{state="direct"}'), 1);
      assert.equal(metric(text, 'holdfast_state{state="caching"}'), 0);
      assert.match(text, /# HELP holdfast_messages_accepted_total /);
      assert.match(text, /# TYPE holdfast_messages_accepted_total counter/);
      assert.doesNotMatch(text, /process_cpu|nodejs_/, 'not the global registry and its default metrics');
      assert.ok(!text.includes(SECRET_PAYLOAD) && !text.includes(SECRET_PASSWORD));
      assert.equal(metric((await get(other.port, '/metrics')).body, 'holdfast_messages_accepted_total'), 0, 'each client its own numbers');
    } finally {
      await other.close();
      await server.close();
      await b.client.close();
      await a.client.close();
    }
  });

  it('follows spills, the cache, reconnects and disconnects through an outage', async () => {
    const { client: c, cacheDir } = await client('metrics-outage');
    const server = await startHealthServer(c, { port: 0, cacheDir, ...NO_DISK_RULE });
    try {
      await waitUntil(() => c.stats().connected, 10_000, 'connected');
      await proxy.refuse(true);
      await waitUntil(() => !c.stats().connected, 10_000, 'disconnected');
      for (let i = 0; i < 12; i++) c.publish('sensors/metrics-outage', `r${i}`);
      await c.flush();
      const during = (await get(server.port, '/metrics')).body;
      assert.equal(metric(during, 'holdfast_cache_messages'), 12);
      assert.ok((metric(during, 'holdfast_cache_bytes') ?? 0) > 0);
      assert.ok((metric(during, 'holdfast_messages_spilled_total') ?? 0) >= 12);
      assert.equal(metric(during, 'holdfast_connected'), 0);
      assert.equal(metric(during, 'holdfast_disconnects_total{kind="network"}'), 1);
      await waitUntil(async () => (metric((await get(server.port, '/metrics')).body, 'holdfast_cache_oldest_age_seconds') ?? 0) > 0, 5000, 'the oldest cached reading to age');
      await proxy.refuse(false);
      await c.drained();
      const afterwards = (await get(server.port, '/metrics')).body;
      assert.equal(metric(afterwards, 'holdfast_reconnects_total'), 1);
      assert.equal(metric(afterwards, 'holdfast_cache_messages'), 0);
      assert.equal(metric(afterwards, 'holdfast_messages_delivered_total'), 12);
    } finally {
      await proxy.refuse(false);
      await server.close();
      await c.close();
    }
  });

  it(`adds the publish-to-PUBCOMP histogram once the client reports latencies ('${LATENCY_EVENT}')`, async () => {
    const { client: c, cacheDir } = await client('metrics-latency');
    const server = await startHealthServer(c, { port: 0, cacheDir, ...NO_DISK_RULE });
    try {
      assert.doesNotMatch((await get(server.port, '/metrics')).body, /holdfast_publish_to_pubcomp_seconds/, 'no histogram that cannot fill');
      c.emit(LATENCY_EVENT, { latenciesMs: [3, 40, 2000] });
      const text = (await get(server.port, '/metrics')).body;
      assert.equal(metric(text, 'holdfast_publish_to_pubcomp_seconds_count'), 3);
      assert.equal(metric(text, 'holdfast_publish_to_pubcomp_seconds_bucket{le="0.005"}'), 1);
      assert.equal(metric(text, 'holdfast_publish_to_pubcomp_seconds_bucket{le="0.05"}'), 2);
      assert.equal(metric(text, 'holdfast_publish_to_pubcomp_seconds_bucket{le="+Inf"}'), 3);
    } finally {
      await server.close();
      await c.close();
    }
  });
});

describe('health rules', () => {
  it('an unwritable cache is unhealthy even while connected', async () => {
    const { client: c } = await client('rules');
    try {
      await waitUntil(() => c.stats().connected, 10_000, 'connected');
      const limits = { maxCache: { messages: 100, bytes: 1 << 20 }, cacheRatio: 0.8, diskMinFreeRatio: 0, diskMinFreeBytes: 0 };
      const disk = { freeBytes: 1 << 30, totalBytes: 1 << 31 };
      assert.equal(evaluateHealth(c.stats(), disk, limits).status, 'healthy');
      const report = evaluateHealth({ ...c.stats(), cacheWritable: false }, disk, limits);
      assert.equal(report.status, 'unhealthy');
      assert.deepEqual(report.reasons, ['cache not writable']);
    } finally {
      await c.close();
    }
  });
});

describe('the health option of open()', () => {
  it('serves /health on loopback while the client runs, and stops with close()', async () => {
    const broker = await startBroker();
    const dir = tempDir('health-option');
    try {
      const protocolVersion = broker.protocolVersions.includes(5) ? 5 : 4;
      const { client, port } = await onFreePorts(1, async ([port]) => ({
        client: await open({ broker: broker.url, clientId: 'dev-health-opt', cacheDir: dir.path, protocolVersion, health: { port: port! } }),
        port: port!,
      }));
      await waitUntil(() => client.stats().connected, 10_000, 'connected');
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { status: string }).status, 'healthy');
      client.publish('sensors/dev-health-opt', 'reading');
      await client.drained();
      // The worker reports delivery latencies once a second.
      const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      await waitUntil(async () => /holdfast_publish_to_pubcomp_seconds_count \d/.test(await metrics()), 5000, 'the latency report');
      assert.match(await metrics(), /holdfast_publish_to_pubcomp_seconds_count 1\b/, 'the real delivery latency reached the histogram');
      await client.close();
      await assert.rejects(fetch(`http://127.0.0.1:${port}/health`), 'the server stopped with the client');
    } finally {
      await broker.close();
      dir.remove();
    }
  });

  it('rejects a bad health option at the call site', async () => {
    await assert.rejects(
      open({ broker: 'mqtt://127.0.0.1:1', clientId: 'c', health: { port: 70_000 } }),
      (err: unknown) => err instanceof HoldfastError && err.code === ErrorCodes.INVALID_OPTION && /health\.port must be an integer from 0 to 65535/.test(err.message),
    );
  });
});
