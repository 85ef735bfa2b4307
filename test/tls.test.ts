/**
 * TLS, mTLS and password auth against a real Mosquitto TLS listener, with certificates made here by
 * openssl and a password file made by mosquitto_passwd. Each success delivers; each failure (wrong
 * CA, expired certificate, wrong password, no or untrusted client certificate) is reported as a
 * 'connection-error' event, keeps the client disconnected and backs off instead of looping, and no
 * password, key or payload shows up in events or stats. examples/tls.ts runs against it too.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadConfig, open, type HoldfastOptions } from 'holdfast';
import {
  findMosquittoPasswd,
  makeTlsFiles,
  mosquittoPasswordFile,
  startAuditor,
  startBroker,
  startLinkProxy,
  tlsListenerConfig,
  type Auditor,
  type Broker,
  type TlsFiles,
} from '@holdfast/testkit';
import { extractReadingNumber, onFreePorts, skipUnlessCI, tempDir, waitUntil } from './helpers.js';

const USER = 'sensor';
const PASSWORD = 'right-horse-battery-4417';
const WRONG_PASSWORD = 'wrong-horse-battery-9920';
const PAYLOAD_MARK = 'payload-marker-5c1e';
const RECONNECT = { minMs: 200, maxMs: 1000 };

let files: TlsFiles;
let broker: Broker;
let auditor: Auditor;
/** Port of the TLS listener that checks the server only, and of the one that requires a client certificate. */
let serverAuthPort = 0;
let mtlsPort = 0;
/** Why the TLS tests cannot run here (no mosquitto_passwd, or no mosquitto), or undefined. */
let missing: string | undefined;
const dirs: Array<{ remove(): void }> = [];

before(async () => {
  if (!findMosquittoPasswd()) {
    missing = 'mosquitto_passwd is not installed (Debian: apt-get install mosquitto)';
    return;
  }
  files = makeTlsFiles();
  const passwd = mosquittoPasswordFile(files.dir, { [USER]: PASSWORD });
  // Mosquitto cannot bind port 0 and say which port it got: pick two, and pick again if one was taken.
  broker = await onFreePorts(2, async ([serverAuth, mtls]) => {
    const started = await startBroker({
      extraConfig: [`password_file ${passwd}`, ...tlsListenerConfig(serverAuth!, files), ...tlsListenerConfig(mtls!, files, { requireCertificate: true })],
    });
    serverAuthPort = serverAuth!;
    mtlsPort = mtls!;
    return started;
  });
  if (broker.kind !== 'mosquitto') {
    missing = 'TLS tests need mosquitto (the Aedes fallback has no TLS listener)';
    return;
  }
  // The auditor listens on the plain listener; anonymous access stays allowed there.
  auditor = await startAuditor({ url: broker.url, topics: ['tls/#', 'sensors/#'], extract: extractReadingNumber });
});
after(async () => {
  await auditor?.close();
  await broker?.close();
  files?.remove();
  for (const dir of dirs) dir.remove();
});

function base(clientId: string, port: number): HoldfastOptions {
  const dir = tempDir(`tls-${clientId}`);
  dirs.push(dir);
  return { broker: `mqtts://127.0.0.1:${port}`, clientId, cacheDir: dir.path, reconnect: RECONNECT, connectTimeoutMs: 2000, timeoutMs: 500 };
}

const reading = (device: string, n: number): string => JSON.stringify({ device, n, note: PAYLOAD_MARK });
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

async function deliversOver(options: HoldfastOptions, count = 20): Promise<void> {
  const client = await open(options);
  try {
    for (let n = 1; n <= count; n++) client.publish(`tls/${options.clientId}`, reading(options.clientId, n));
    await client.drained();
    assert.equal(client.stats().delivered, count);
    const report = await auditor.waitFor({ [options.clientId]: range(count) }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0], 'every reading arrived, once, in order');
  } finally {
    await client.close();
  }
}

describe('TLS, mTLS and auth that work', () => {
  it('server authentication with the CA delivers', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    await deliversOver({ ...base('tls-ca', serverAuthPort), tls: { ca: files.read(files.ca) } });
  });

  it('mTLS with require_certificate delivers', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    await deliversOver({ ...base('tls-mtls', mtlsPort), tls: { ca: files.read(files.ca), cert: files.read(files.clientCert), key: files.read(files.clientKey) } });
  });

  it('username and password from a mosquitto password file deliver', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    await deliversOver({ ...base('tls-auth', serverAuthPort), tls: { ca: files.read(files.ca) }, username: USER, password: PASSWORD });
  });

  it('secrets given as file paths through loadConfig deliver over mTLS with a password', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    const pwFile = tempDir('tls-pw');
    dirs.push(pwFile);
    const passwordPath = `${pwFile.path}/password`;
    writeFileSync(passwordPath, `${PASSWORD}\n`, { mode: 0o600 });
    const { broker: url, clientId, cacheDir } = base('tls-config', mtlsPort);
    const options = await loadConfig({
      env: {
        HOLDFAST_BROKER: url,
        HOLDFAST_CLIENT_ID: clientId,
        HOLDFAST_CACHE_DIR: cacheDir,
        HOLDFAST_USERNAME: USER,
        HOLDFAST_PASSWORD_FILE: passwordPath,
        HOLDFAST_TLS_CA_FILE: files.ca,
        HOLDFAST_TLS_CERT_FILE: files.clientCert,
        HOLDFAST_TLS_KEY_FILE: files.clientKey,
      },
    });
    await deliversOver(options);
  });
});

interface Observed {
  attempts: number;
  /** How long the client was watched, from open() to the last look at the proxy. */
  elapsedMs: number;
  events: Array<[string, unknown]>;
  statsJson: string;
  connected: boolean;
  cached: number;
}

/** Failed attempts to watch, each followed by a backoff wait. */
const RETRIES = 3;

/** Runs a client through a proxy that counts TCP connections until it has retried RETRIES times, publishing one reading. */
async function observeFailure(options: HoldfastOptions, targetPort: number): Promise<Observed> {
  const proxy = await startLinkProxy({ targetPort });
  const started = performance.now();
  const client = await open({ ...options, broker: `mqtts://127.0.0.1:${proxy.port}` });
  const events: Array<[string, unknown]> = [];
  for (const name of ['connect', 'disconnect', 'reconnecting', 'connection-error', 'error']) client.on(name, (data: unknown) => events.push([name, data]));
  try {
    client.publish(`tls/${options.clientId}`, reading(options.clientId, 1));
    await waitUntil(() => events.filter(([name]) => name === 'reconnecting').length >= RETRIES, 20_000, `${RETRIES} retries`);
    await client.flush();
    const stats = client.stats();
    const attempts = proxy.attempts.length;
    return { attempts, elapsedMs: performance.now() - started, events, statsJson: JSON.stringify(stats), connected: stats.connected, cached: stats.cached.messages };
  } finally {
    await client.close();
    await proxy.close();
  }
}

function assertFailedWell(seen: Observed, expected: RegExp, secrets: string[], kind: 'tls' | 'auth'): void {
  assert.equal(seen.connected, false, 'stats().connected stays false');
  assert.equal(seen.events.filter(([name]) => name === 'connect').length, 0, 'never connected');
  const errors = seen.events.filter(([name]) => name === 'connection-error').map(([, data]) => data as { message: string; code?: string | number });
  assert.ok(errors.length > 0, 'a connection-error event');
  for (const e of errors) assert.ok(typeof e.message === 'string' && e.message.length > 0, 'with a message');
  assert.ok(errors.some((e) => expected.test(`${String(e.code)} ${e.message}`)), `an error matching ${expected}: ${JSON.stringify(errors[0])}`);
  assert.ok(errors.some((e) => (e as { kind?: string }).kind === kind), `classified as a ${kind} failure: ${JSON.stringify(errors[0])}`);

  // Backoff, not a tight loop: every wait is within [minMs, maxMs], so attempts are bounded.
  const delays = seen.events.filter(([name]) => name === 'reconnecting').map(([, data]) => (data as { delayMs: number }).delayMs);
  assert.ok(delays.length > 0, 'it keeps retrying');
  for (const d of delays) assert.ok(d >= RECONNECT.minMs && d <= RECONNECT.maxMs, `delay ${d} within the backoff window`);
  assert.ok(seen.attempts >= 2, `retried (${seen.attempts} attempts)`);
  assert.ok(seen.attempts <= seen.elapsedMs / RECONNECT.minMs + 1, `bounded: ${seen.attempts} attempts in ${Math.round(seen.elapsedMs)} ms`);

  assert.equal(seen.cached, 1, 'the accepted reading waits in the cache');
  const exposed = JSON.stringify(seen.events) + seen.statsJson;
  for (const secret of [...secrets, PAYLOAD_MARK, 'PRIVATE KEY']) assert.ok(!exposed.includes(secret), `${secret.slice(0, 12)}… never appears in events or stats`);
}

describe('TLS and auth failures: a typed error, backoff, no secrets', () => {
  it('a wrong CA', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    const seen = await observeFailure({ ...base('fail-ca', serverAuthPort), tls: { ca: files.read(files.wrongCa) } }, serverAuthPort);
    assertFailedWell(seen, /SELF_SIGNED|self.signed|unable to verify|UNABLE_TO/i, [], 'tls');
  });

  it('an expired client certificate', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    const key = files.read(files.expiredClientKey).toString();
    const seen = await observeFailure(
      { ...base('fail-expired', mtlsPort), tls: { ca: files.read(files.ca), cert: files.read(files.expiredClientCert), key } },
      mtlsPort,
    );
    assertFailedWell(seen, /expired/i, [key.split('\n')[1]!], 'tls');
  });

  it('a wrong password', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    const seen = await observeFailure({ ...base('fail-password', serverAuthPort), tls: { ca: files.read(files.ca) }, username: USER, password: WRONG_PASSWORD }, serverAuthPort);
    assertFailedWell(seen, /not authori[sz]ed|bad username|^(4|5|134|135) /i, [WRONG_PASSWORD], 'auth');
  });

  it('an unauthorized client: no certificate where one is required', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    const seen = await observeFailure({ ...base('fail-nocert', mtlsPort), tls: { ca: files.read(files.ca) } }, mtlsPort);
    assertFailedWell(seen, /certificate.required|handshake.failure|alert/i, [], 'tls');
  });

  it('an unauthorized client: a certificate from a CA the broker does not trust', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    const key = files.read(files.untrustedClientKey).toString();
    const seen = await observeFailure(
      { ...base('fail-untrusted', mtlsPort), tls: { ca: files.read(files.ca), cert: files.read(files.untrustedClientCert), key } },
      mtlsPort,
    );
    assertFailedWell(seen, /unknown.ca|alert/i, [key.split('\n')[1]!], 'tls');
  });
});

describe('examples/tls.ts', () => {
  it('runs against the TLS broker with file paths from the environment and delivers', async (t) => {
    if (missing) return skipUnlessCI(t, missing);
    const { broker: url, clientId, cacheDir } = base('example-tls', mtlsPort);
    const examples = fileURLToPath(new URL('../examples/', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', 'tls.ts'], {
      cwd: examples,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        HOLDFAST_BROKER: url,
        HOLDFAST_CLIENT_ID: clientId,
        HOLDFAST_CACHE_DIR: cacheDir,
        HOLDFAST_TLS_CA_FILE: files.ca,
        HOLDFAST_TLS_CERT_FILE: files.clientCert,
        HOLDFAST_TLS_KEY_FILE: files.clientKey,
        TLS_EXAMPLE_COUNT: '5',
        TLS_EXAMPLE_PERIOD_MS: '20',
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    assert.equal(code, 0, `example exited ${code}\n${stdout}\n${stderr}`);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.msg === 'connected'));
    assert.deepEqual(lines.at(-1), { msg: 'done', accepted: 5, delivered: 5 });
    assert.ok(!stdout.includes('PRIVATE KEY') && !stdout.includes(PAYLOAD_MARK));
    const report = await auditor.waitFor({ [clientId]: range(5) }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
  });
});
