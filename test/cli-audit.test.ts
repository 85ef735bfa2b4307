/**
 * `holdfast audit`: per-device seq tracking by epoch over a persistent QoS 2 subscription, with bulk
 * unpacking, live gap/duplicate/reorder events, a summary, and a non-zero exit code when gaps remain.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, connectAsync, type IConnackPacket, type MqttClient } from 'mqtt';
import { Packr } from 'msgpackr';
import { startBroker, type Broker } from '@holdfast/testkit';
import { skipUnlessCI, tempDir } from './helpers.js';
import { jsonLines, runCli, startCli, type RunningCli } from './fixtures/cli-run.js';

const EPOCH = 2 ** 32;
let broker: Broker;
const dir = tempDir('cli-audit');

before(async () => {
  broker = await startBroker();
});
after(async () => {
  await broker.close();
  dir.remove();
});

/** Starts an audit and resolves once it is subscribed. */
async function startAudit(topic: string, extra: string[] = [], url = broker.url): Promise<RunningCli> {
  const audit = startCli(['audit', '--broker', url, '--topic', topic, '--json', ...extra]);
  await audit.waitForLine((l) => l.includes('auditing'), 20_000, 'stderr');
  return audit;
}

async function summaryOf(audit: RunningCli): Promise<{ code: number | null; events: Array<Record<string, unknown>>; summary: Record<string, unknown> }> {
  const r = await audit.done;
  const lines = jsonLines(r.stdout);
  const summary = lines.find((l) => l.event === 'summary');
  assert.ok(summary, `a summary line; stdout: ${r.stdout}; stderr: ${r.stderr}`);
  return { code: r.code, events: lines.filter((l) => l.event !== 'summary'), summary };
}

/** Publishes as a holdfast device would on MQTT 5: the holdfast-id user property. */
async function sendSeqs(client: MqttClient, device: string, topic: string, seqs: number[]): Promise<void> {
  for (const seq of seqs) {
    await client.publishAsync(topic, `{"v":${seq}}`, { qos: 2, properties: { userProperties: { 'holdfast-id': `${device}/${seq}` } } });
  }
}

/** Whether the broker still holds a session for `clientId` (the probe leaves none behind on MQTT 5). */
async function sessionPresent(clientId: string, protocolVersion: 4 | 5): Promise<boolean> {
  const probe = connect(broker.url, { clientId, clean: false, protocolVersion, reconnectPeriod: 0, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}) });
  try {
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      probe.once('connect', resolve);
      probe.once('error', reject);
    });
    return connack.sessionPresent;
  } finally {
    await probe.endAsync(true);
  }
}

describe('holdfast audit', () => {
  it('proves a real publisher lost nothing (MQTT 5 seqs), exit 0', async (t) => {
    if (!broker.protocolVersions.includes(5)) return skipUnlessCI(t, 'needs an MQTT 5 broker (mosquitto)');
    const audit = await startAudit('audited/#', ['--duration', '8s']);
    const pub = await runCli(['publish', '--broker', broker.url, '--client-id', 'meter', '--count', '40', '--interval', '10ms', '--cache-dir', dir.path + '/meter', '--topic', 'audited/{device}/{kind}']);
    assert.equal(pub.code, 0, pub.stderr);
    const { code, summary } = await summaryOf(audit);
    assert.equal(code, 0);
    const meter = (summary.devices as Record<string, Record<string, number>>).meter!;
    assert.ok(meter.unique! >= 40);
    assert.deepEqual({ lost: summary.lost, duplicates: summary.duplicates, outOfOrder: summary.outOfOrder }, { lost: 0, duplicates: 0, outOfOrder: 0 });
  });

  it('piped, prints the running counts every --progress-every, not only at the end', async () => {
    const audit = startCli(['audit', '--broker', broker.url, '--topic', 'progress/#', '--duration', '30s', '--progress-every', '300ms']);
    const json = startCli(['audit', '--broker', broker.url, '--topic', 'progress/#', '--duration', '30s', '--progress-every', '300ms', '--json']);
    try {
      const first = await audit.waitForLine((l) => l.startsWith('progress '), 10_000);
      const match = /^progress (\d+) s: devices 0 \| received 0 \| unique 0 \| lost 0 \| duplicates 0 \| reordered 0$/.exec(first);
      assert.ok(match, first);
      assert.ok(Number(match[1]) < 30, `seconds since the audit started: ${first}`);
      await audit.waitForLine((l) => l.startsWith('progress ') && l !== first, 5000);
      const line = JSON.parse(await json.waitForLine((l) => l.includes('"msg":"progress"'), 10_000, 'stderr')) as Record<string, unknown>;
      assert.equal(line.lost, 0);
      assert.ok(typeof line.elapsedMs === 'number' && line.elapsedMs >= 0 && line.elapsedMs < 30_000, `elapsedMs ${String(line.elapsedMs)}`);
      assert.equal(json.stdout(), '', 'stdout keeps only events and the summary');
    } finally {
      audit.kill('SIGINT');
      json.kill('SIGINT');
    }
    assert.equal((await audit.done).code, 0);
    assert.equal((await json.done).code, 0);
  });

  it('two audits on one host with the default client id both count every reading', async (t) => {
    if (!broker.protocolVersions.includes(5)) return skipUnlessCI(t, 'needs an MQTT 5 broker (mosquitto)');
    // Under one id the broker hands the session to whichever connected last; the other reconnects
    // and takes it back, and the readings split between them.
    const audits = await Promise.all([0, 1].map(() => startAudit('shared/#', ['--progress-every', '100ms'])));
    try {
      const client = await connectAsync(broker.url, { protocolVersion: 5 });
      try {
        await sendSeqs(client, 'dev-s', 'shared/s', Array.from({ length: 20 }, (_, i) => EPOCH + 1 + i));
      } finally {
        await client.endAsync();
      }
      await Promise.all(audits.map((a) => a.waitForLine((l) => l.includes('"msg":"progress"') && l.includes('"unique":20'), 20_000, 'stderr')));
    } finally {
      for (const a of audits) a.kill('SIGINT');
    }
    for (const audit of audits) {
      const { code, summary } = await summaryOf(audit);
      assert.equal(code, 0);
      assert.equal((summary.devices as Record<string, Record<string, number>>)['dev-s']?.unique, 20);
    }
  });

  for (const protocol of [5, 4] as const) {
    it(`--keep-session leaves the session for the next audit under that id, which drops it at exit (MQTT ${protocol === 5 ? '5' : '3.1.1'})`, async (t) => {
      if (!broker.protocolVersions.includes(protocol)) return skipUnlessCI(t, `needs an MQTT ${protocol} broker (mosquitto)`);
      const id = `kept-${protocol}`;
      const args = ['--client-id', id, '--protocol', String(protocol)];
      const keeper = await startAudit('kept/#', [...args, '--keep-session']);
      keeper.kill('SIGINT');
      assert.equal((await keeper.done).code, 0);
      // Readings published while no audit runs: the kept session queues them.
      const client = await connectAsync(broker.url, { protocolVersion: 5 });
      try {
        for (let n = 1; n <= 5; n++) await client.publishAsync(`kept/${protocol}`, JSON.stringify({ device: `dev-k${protocol}`, seq: n }), { qos: 2 });
      } finally {
        await client.endAsync();
      }
      const resumed = await startAudit('kept/#', [...args, '--progress-every', '100ms']);
      try {
        await resumed.waitForLine((l) => l.includes('"msg":"progress"') && l.includes('"unique":5'), 20_000, 'stderr');
      } finally {
        resumed.kill('SIGINT');
      }
      assert.equal((await resumed.done).code, 0);
      // Without --keep-session nothing is left behind: a 3.1.1 session would otherwise never expire.
      assert.equal(await sessionPresent(id, protocol), false, 'the resumed audit dropped the session');
    });
  }

  it('reports gaps, duplicates and late arrivals live and in the summary; exit 1 while gaps remain', async (t) => {
    if (!broker.protocolVersions.includes(5)) return skipUnlessCI(t, 'needs an MQTT 5 broker (mosquitto)');
    const audit = await startAudit('gaps/#', ['--duration', '3s']);
    const client = await connectAsync(broker.url, { protocolVersion: 5 });
    const e1 = EPOCH;
    try {
      await sendSeqs(client, 'dev-a', 'gaps/a', [e1 + 1, e1 + 2, e1 + 4, e1 + 2, e1 + 3, e1 + 7]);
      // A restart: a new epoch counts from 1, so a missing first reading is a gap too.
      await sendSeqs(client, 'dev-a', 'gaps/a', [2 * EPOCH + 2]);
      await sendSeqs(client, 'dev-b', 'gaps/b', [e1 + 10, e1 + 11]);
    } finally {
      await client.endAsync();
    }
    const { code, events, summary } = await summaryOf(audit);
    assert.equal(code, 1, 'gaps remain');
    const a = (summary.devices as Record<string, Record<string, unknown>>)['dev-a']!;
    assert.equal(a.lost, 3, 'seqs 5, 6 of epoch 1 and 1 of epoch 2');
    assert.equal(a.duplicates, 1);
    assert.equal(a.outOfOrder, 1, 'seq 3 arrived after 4');
    assert.equal(a.epochs, 2);
    assert.deepEqual(a.missing, [e1 + 5, e1 + 6, 2 * EPOCH + 1]);
    const b = (summary.devices as Record<string, Record<string, unknown>>)['dev-b']!;
    assert.equal(b.lost, 0, 'the audit joined dev-b mid-stream: nothing before its first seq counts');
    assert.ok(events.some((e) => e.event === 'gap' && e.device === 'dev-a' && e.count === 1 && e.from === e1 + 3));
    assert.ok(events.some((e) => e.event === 'duplicate' && e.seq === e1 + 2));
    assert.ok(events.some((e) => e.event === 'late' && e.seq === e1 + 3));
    assert.ok(events.some((e) => e.event === 'epoch' && e.epoch === 2));
  });

  it('unpacks bulk messages and counts each reading', async (t) => {
    if (!broker.protocolVersions.includes(5)) return skipUnlessCI(t, 'needs an MQTT 5 broker (mosquitto)');
    const audit = await startAudit('holdfast/bulk/#', ['--duration', '2s']);
    const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });
    const readings = [1, 2, 3].map((c) => ({ topic: 'sensors/x', payload: Buffer.from('{}'), seq: EPOCH + c, ts: Date.now() }));
    const client = await connectAsync(broker.url, { protocolVersion: 5 });
    try {
      await client.publishAsync('holdfast/bulk/packer', packr.pack(readings), {
        qos: 2,
        properties: { userProperties: { 'holdfast-id': `packer/${EPOCH + 1}`, 'holdfast-bulk': '3' } },
      });
    } finally {
      await client.endAsync();
    }
    const { code, summary } = await summaryOf(audit);
    assert.equal(code, 0);
    const packer = (summary.devices as Record<string, Record<string, number>>).packer!;
    assert.equal(packer.unique, 3);
    assert.equal(packer.lost, 0);
  });

  it('falls back to MQTT 3.1.1 on a broker without MQTT 5 and counts JSON {device, n} readings', async () => {
    const aedes = await startBroker({ forceAedes: true, log: () => undefined });
    try {
      const audit = await startAudit('v4/#', ['--duration', '2s'], aedes.url);
      const client = await connectAsync(aedes.url, { protocolVersion: 4 });
      try {
        for (const n of [1, 2, 4]) await client.publishAsync('v4/old', JSON.stringify({ device: 'old', n }), { qos: 2 });
      } finally {
        await client.endAsync();
      }
      const { code, summary } = await summaryOf(audit);
      assert.equal(code, 1);
      assert.equal(summary.lost, 1);
      assert.match(audit.stderr(), /3\.1\.1/);
    } finally {
      await aedes.close();
    }
  });

  it('Ctrl-C ends the audit with the summary', async () => {
    const audit = await startAudit('quiet/#');
    audit.kill('SIGINT');
    const { code, summary } = await summaryOf(audit);
    assert.equal(code, 0);
    assert.equal(summary.received, 0);
  });

  it('an unreachable broker is a clear error, exit 1', async () => {
    const r = await runCli(['audit', '--broker', 'mqtt://127.0.0.1:1', '--topic', 'x/#', '--duration', '1s'], { timeoutMs: 30_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot subscribe on mqtt:\/\/127\.0\.0\.1:1/);
  });
});
