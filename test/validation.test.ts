/**
 * Guarantee 7: bad input gets a clear, typed error at the call site, and nothing else is lost.
 * One test per rule of options.ts (open()) and validate.ts (publish()), in the manner of piscina's
 * test/option-validation.ts: each builds its own input from a valid base, expects the field named in
 * the message and in `details.field`, and shares no state with the others. Codes are written out
 * literally, so a renamed code fails here too. Every integer rule is also
 * checked at its bounds, which must be accepted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { open, HoldfastError, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { startAuditor, startBroker, type Auditor, type Broker } from '@holdfast/testkit';
import { extractReadingNumber, tempDir } from './helpers.js';
// Not exported: the pure validator behind open(), to show a bound is accepted without starting a worker.
import { resolveOptions } from '../packages/holdfast/dist/options.js';

function isHoldfastError(code: string, mentions?: RegExp, field?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof HoldfastError, `expected a HoldfastError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (mentions) assert.match(err.message, mentions);
    if (field !== undefined) assert.equal(err.details?.field, field);
    return true;
  };
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('open() option validation', () => {
  // Never created: every input below is refused before a worker starts.
  const scratch = tempDir('validation-options');
  after(() => scratch.remove());
  const base = (): Record<string, unknown> => ({ broker: 'mqtt://127.0.0.1:1', clientId: 'c', cacheDir: `${scratch.path}/never` });
  /** The base with `path` (e.g. 'highWater.bytes') set to `value`. */
  const withField = (path: string, value: unknown): Record<string, unknown> => {
    const input = base();
    const keys = path.split('.');
    let at = input;
    for (const key of keys.slice(0, -1)) at = (at[key] ??= {}) as Record<string, unknown>;
    at[keys.at(-1)!] = value;
    return input;
  };
  const without = (key: string): Record<string, unknown> => {
    const input = base();
    delete input[key];
    return input;
  };

  /** [rule, input, field named, message] */
  const rules: Array<[string, unknown, string, RegExp]> = [
    ['options is not an object', 'mqtt://x', '(root)', /options\.\(root\) must be an object/],
    ['options is null', null, '(root)', /must be an object; got null/],
    ['options is an array', [], '(root)', /must be an object; got an array/],
    ['an unknown option', { ...base(), qos2: true }, 'qos2', /options\.qos2 is not a known option \(known: broker, clientId/],
    ['broker missing', without('broker'), 'broker', /options\.broker must be a broker URL such as mqtt:\/\/host:1883; got undefined/],
    ['broker empty', withField('broker', ''), 'broker', /options\.broker must be a broker URL/],
    ['broker not a string', withField('broker', 1883), 'broker', /options\.broker must be a broker URL such as mqtt:\/\/host:1883; got 1883/],
    ['broker not a URL', withField('broker', 'not a url'), 'broker', /options\.broker must be a valid URL with scheme mqtt:, mqtts:, ws: or wss:/],
    ['broker with another scheme', withField('broker', 'http://example.com'), 'broker', /must be a URL with scheme mqtt:, mqtts:, ws: or wss:; got "http:…"/],
    ['broker without a host', withField('broker', 'mqtt://'), 'broker', /options\.broker must be a URL with a host name/],
    ['broker with credentials in the URL', withField('broker', 'mqtt://user:secret@host'), 'broker', /without credentials \(use options\.username\/password\); got "\(hidden\)"/],
    ['clientId missing', without('clientId'), 'clientId', /options\.clientId must be a non-empty string \(it has no default/],
    ['clientId empty', withField('clientId', ''), 'clientId', /options\.clientId must be a non-empty string/],
    ['clientId not a string', withField('clientId', 7), 'clientId', /options\.clientId must be a non-empty string.*; got 7/],
    ['clientId over 65,535 bytes of UTF-8', withField('clientId', 'é'.repeat(32_768)), 'clientId', /options\.clientId must be a non-empty string/],
    ['cacheDir empty', withField('cacheDir', ''), 'cacheDir', /options\.cacheDir must be a non-empty string; got ""/],
    ['cacheDir not a string', withField('cacheDir', 42), 'cacheDir', /options\.cacheDir must be a non-empty string; got 42/],
    ['qos 0', withField('qos', 0), 'qos', /options\.qos must be 1 or 2; got 0/],
    ['qos as a string', withField('qos', '2'), 'qos', /options\.qos must be 1 or 2; got "2"/],
    ['durability unknown', withField('durability', 'sync'), 'durability', /options\.durability must be 'spill' or 'journal'; got "sync"/],
    ['protocolVersion 3', withField('protocolVersion', 3), 'protocolVersion', /options\.protocolVersion must be 4 \(MQTT 3\.1\.1\) or 5; got 3/],
    ['highWater not an object', withField('highWater', 5), 'highWater', /options\.highWater must be an object; got 5/],
    ['highWater with an unknown key', withField('highWater.msgs', 1), 'highWater.msgs', /options\.highWater\.msgs is not a known option \(known: messages, bytes\)/],
    ['maxCache not an object', withField('maxCache', 'big'), 'maxCache', /options\.maxCache must be an object/],
    ['maxCache with an unknown key', withField('maxCache.msgs', 1), 'maxCache.msgs', /options\.maxCache\.msgs is not a known option \(known: messages, bytes\)/],
    ['reconnect not an object', withField('reconnect', true), 'reconnect', /options\.reconnect must be an object/],
    ['reconnect with an unknown key', withField('reconnect.delay', 1), 'reconnect.delay', /options\.reconnect\.delay is not a known option \(known: minMs, maxMs\)/],
    ['reconnect.maxMs below reconnect.minMs', withField('reconnect', { minMs: 5000, maxMs: 1000 }), 'reconnect.maxMs', /options\.reconnect\.maxMs must be at least reconnect\.minMs \(5000\); got 1000/],
    ['watchdogMs below timeoutMs', { ...base(), timeoutMs: 5000, watchdogMs: 4999 }, 'watchdogMs', /options\.watchdogMs must be at least timeoutMs \(5000\); got 4999/],
    ['session not an object', withField('session', 'clean'), 'session', /options\.session must be an object/],
    ['session with an unknown key', withField('session.expiry', 1), 'session.expiry', /options\.session\.expiry is not a known option \(known: clean, expirySec\)/],
    ['session.clean not a boolean', withField('session.clean', 'no'), 'session.clean', /options\.session\.clean must be a boolean; got "no"/],
    ['bulk not false, true or an object', withField('bulk', 'yes'), 'bulk', /options\.bulk must be false, true or \{ maxMessages, maxBytes, topic \}; got "yes"/],
    ['bulk with an unknown key', withField('bulk.size', 1), 'bulk.size', /options\.bulk\.size is not a known option \(known: maxMessages, maxBytes, topic\)/],
    ['bulk.topic empty', withField('bulk.topic', ''), 'bulk.topic', /options\.bulk\.topic must be a non-empty string; got ""/],
    ['bulk.topic not a string', withField('bulk.topic', 5), 'bulk.topic', /options\.bulk\.topic must be a non-empty string; got 5/],
    ['tls not an object', withField('tls', 'PEM'), 'tls', /options\.tls must be an object \{ ca, cert, key, passphrase, rejectUnauthorized \}/],
    ['tls with an unknown key', withField('tls.pfx', 'x'), 'tls.pfx', /options\.tls\.pfx is not a known option/],
    ['tls.ca neither a string nor a Buffer', withField('tls.ca', 42), 'tls.ca', /options\.tls\.ca must be a PEM string or Buffer; got \(hidden\)/],
    ['tls.cert without tls.key', withField('tls.cert', 'PEM'), 'tls.cert', /options\.tls\.cert must be given together with tls\.key \(mTLS needs both\)/],
    ['tls.key without tls.cert', withField('tls.key', 'SECRET-KEY'), 'tls.cert', /options\.tls\.cert must be given together with tls\.key/],
    ['tls.rejectUnauthorized not a boolean', withField('tls.rejectUnauthorized', 'no'), 'tls.rejectUnauthorized', /options\.tls\.rejectUnauthorized must be a boolean; got \(hidden\)/],
    ['tls.passphrase empty', withField('tls.passphrase', ''), 'tls.passphrase', /options\.tls\.passphrase must be a non-empty string; got \(hidden\)/],
    ['username empty', withField('username', ''), 'username', /options\.username must be a non-empty string; got ""/],
    ['username not a string', withField('username', 7), 'username', /options\.username must be a non-empty string; got 7/],
    ['password empty', withField('password', ''), 'password', /options\.password must be a non-empty string; got \(hidden\)/],
    ['password not a string', withField('password', 4242), 'password', /options\.password must be a non-empty string; got \(hidden\)/],
    ['health neither false nor an object', withField('health', 9464), 'health', /options\.health must be false or \{ port, host \}; got 9464/],
    ['health with an unknown key', withField('health.path', '/'), 'health.path', /options\.health\.path is not a known option \(known: port, host\)/],
    ['health.host empty', withField('health.host', ''), 'health.host', /options\.health\.host must be a non-empty string/],
    ['logLevel unknown', withField('logLevel', 'verbose'), 'logLevel', /options\.logLevel must be one of silent, fatal, error, warn, info, debug; got "verbose"/],
    ['cacheKey and cacheKeyFile together', { ...base(), cacheKey: 'a'.repeat(64), cacheKeyFile: '/etc/key' }, 'cacheKey', /options\.cacheKey must be given without cacheKeyFile \(one or the other\); got \(hidden\)/],
    ['cacheKey not 32 bytes', withField('cacheKey', 'abcd'), 'cacheKey', /options\.cacheKey must be a 32-byte key: a Buffer, 64 hex characters or base64; got \(hidden\)/],
    ['cacheKey a Buffer of the wrong length', withField('cacheKey', Buffer.alloc(16)), 'cacheKey', /options\.cacheKey must be a 32-byte key/],
    ['cacheKey neither a string nor a Buffer', withField('cacheKey', 42), 'cacheKey', /options\.cacheKey must be a 32-byte key/],
    ['cacheKeyFile empty', withField('cacheKeyFile', ''), 'cacheKeyFile', /options\.cacheKeyFile must be a non-empty string/],
  ];
  for (const [rule, input, field, message] of rules) {
    it(`rejects: ${rule}`, async () => {
      await assert.rejects(open(input as HoldfastOptions), isHoldfastError('HOLDFAST_INVALID_OPTION', message, field));
    });
  }

  /** Every integer option: [path, min, max]. Below, above and fractional are refused; both bounds are accepted. */
  const integers: Array<[string, number, number]> = [
    ['timeoutMs', 10, 3_600_000],
    ['watchdogMs', 10, 24 * 3_600_000],
    ['deadLetterAfterDisconnects', 1, 1000],
    ['highWater.messages', 1, 10_000_000],
    ['highWater.bytes', 1024, 2 ** 31],
    ['maxCache.messages', 1, 1_000_000_000],
    ['maxCache.bytes', 4096, 2 ** 40],
    ['bulk.maxMessages', 1, 100_000],
    ['bulk.maxBytes', 256, 256 * 1024 * 1024],
    ['reconnect.minMs', 10, 3_600_000],
    ['reconnect.maxMs', 10, 3_600_000],
    ['session.expirySec', 0, 0xffffffff],
    ['keepaliveSec', 1, 65_535],
    ['connectTimeoutMs', 100, 600_000],
    ['closeTimeoutMs', 100, 600_000],
    ['health.port', 0, 65_535],
  ];
  for (const [path, min, max] of integers) {
    const allowed = new RegExp(`options\\.${escape(path)} must be an integer from ${min} to ${max}`);
    it(`rejects: ${path} below ${min}`, async () => {
      await assert.rejects(open(withField(path, min - 1) as unknown as HoldfastOptions), isHoldfastError('HOLDFAST_INVALID_OPTION', allowed, path));
    });
    it(`rejects: ${path} above ${max}`, async () => {
      await assert.rejects(open(withField(path, max + 1) as unknown as HoldfastOptions), isHoldfastError('HOLDFAST_INVALID_OPTION', allowed, path));
    });
    it(`rejects: ${path} not an integer`, async () => {
      await assert.rejects(open(withField(path, min + 0.5) as unknown as HoldfastOptions), isHoldfastError('HOLDFAST_INVALID_OPTION', allowed, path));
      await assert.rejects(open(withField(path, String(min)) as unknown as HoldfastOptions), isHoldfastError('HOLDFAST_INVALID_OPTION', allowed, path));
    });
    it(`accepts: ${path} at ${min} and at ${max}`, () => {
      for (const value of [min, max]) {
        // reconnect.maxMs must also be at least minMs: set the other one to the same value.
        // watchdogMs must also be at least timeoutMs: its lower bound is accepted with the lowest timeoutMs.
        const input = path.startsWith('reconnect.')
          ? withField('reconnect', { minMs: value, maxMs: value })
          : path === 'watchdogMs'
            ? { ...withField(path, value), timeoutMs: 10 }
            : withField(path, value);
        const resolved = resolveOptions(input) as unknown as Record<string, unknown>;
        const got = path.split('.').reduce<unknown>((at, key) => (at as Record<string, unknown>)[key], resolved);
        assert.equal(got, value);
      }
    });
  }

  it('never echoes a secret in an error: password, TLS material, cacheKey, URL credentials', async () => {
    const secrets: Array<[Record<string, unknown>, string]> = [
      [withField('password', 424242), '424242'],
      [withField('tls.key', 'SECRET-KEY'), 'SECRET-KEY'],
      [withField('tls.passphrase', 999_111), '999111'],
      [withField('cacheKey', 'SECRET-CACHE-KEY'), 'SECRET-CACHE-KEY'],
      [withField('broker', 'mqtt://user:hunter2@host'), 'hunter2'],
    ];
    for (const [input, secret] of secrets) {
      await assert.rejects(open(input as unknown as HoldfastOptions), (err: HoldfastError) => {
        assert.ok(!err.message.includes(secret) && !JSON.stringify(err.details).includes(secret), `${secret} shown: ${err.message}`);
        return true;
      });
    }
  });
});

describe('publish() argument validation', () => {
  let broker: Broker;
  let auditor: Auditor;
  let client: HoldfastClient;
  const dir = tempDir('validation');

  before(async () => {
    broker = await startBroker();
    const protocolVersion = broker.protocolVersions.includes(5) ? 5 : 4;
    auditor = await startAuditor({ url: broker.url, topics: 'sensors/#', protocolVersion, extract: extractReadingNumber });
    client = await open({ broker: broker.url, clientId: 'dev-valid', cacheDir: dir.path, protocolVersion });
  });
  after(async () => {
    await client.close();
    await auditor.close();
    await broker.close();
    dir.remove();
  });

  const T = 'HOLDFAST_INVALID_TOPIC';
  const P = 'HOLDFAST_INVALID_PAYLOAD';
  const A = 'HOLDFAST_INVALID_ARGUMENT';
  /** [rule, call, code, message, field] */
  const rules: Array<[string, () => unknown, string, RegExp, string]> = [
    ['topic not a string', () => client.publish(42 as unknown as string, 'x'), T, /topic must be a string; got number/, 'topic'],
    ['empty topic', () => client.publish('', 'x'), T, /topic must not be empty/, 'topic'],
    ["topic with '+'", () => client.publish('a/+/b', 'x'), T, /must not contain the wildcards '\+' or '#'/, 'topic'],
    ["topic with '#'", () => client.publish('a/#', 'x'), T, /must not contain the wildcards/, 'topic'],
    ['topic with NUL', () => client.publish('a\u0000b', 'x'), T, /must not contain the NUL character/, 'topic'],
    ['topic over 65,535 bytes of UTF-8', () => client.publish('é'.repeat(32_768), 'x'), T, /must be at most 65535 bytes of UTF-8/, 'topic'],
    ['topic with a lone high surrogate', () => client.publish('a\ud800', 'x'), T, /lone surrogate/, 'topic'],
    ['topic with a lone low surrogate', () => client.publish('a\udc00b', 'x'), T, /lone surrogate/, 'topic'],
    ['payload a number', () => client.publish('t', 42 as unknown as string), P, /payload must be a string, Buffer or Uint8Array; got number/, 'payload'],
    ['payload an object', () => client.publish('t', { v: 1 } as unknown as string), P, /got object/, 'payload'],
    ['payload null', () => client.publish('t', null as unknown as string), P, /got null/, 'payload'],
    ['payload undefined', () => client.publish('t', undefined as unknown as string), P, /got undefined/, 'payload'],
    ['payload an array', () => client.publish('t', [1] as unknown as string), P, /got an array/, 'payload'],
    ["payload over MQTT's 268,435,455 bytes", () => client.publish('t', new Uint8Array(268_435_456)), P, /payload must be at most 268435455 bytes/, 'payload'],
    ['options not an object', () => client.publish('t', 'x', 'urgent' as never), A, /publish options must be an object \{ priority, qos, retain \}/, 'options'],
    ['options null', () => client.publish('t', 'x', null as never), A, /publish options must be an object/, 'options'],
    ['unknown publish option', () => client.publish('t', 'x', { prio: 1 } as never), A, /publish option 'prio' is not known \(known: priority, qos, retain\)/, 'prio'],
    ['qos 0', () => client.publish('t', 'x', { qos: 0 as 1 }), 'HOLDFAST_INVALID_QOS', /qos must be 1 or 2; got 0/, 'qos'],
    ['qos 3', () => client.publish('t', 'x', { qos: 3 as 1 }), 'HOLDFAST_INVALID_QOS', /qos must be 1 or 2; got 3/, 'qos'],
    ['priority 0', () => client.publish('t', 'x', { priority: 0 }), 'HOLDFAST_INVALID_PRIORITY', /priority must be an integer from 1 to 10; got 0/, 'priority'],
    ['priority 11', () => client.publish('t', 'x', { priority: 11 }), 'HOLDFAST_INVALID_PRIORITY', /got 11/, 'priority'],
    ['priority 2.5', () => client.publish('t', 'x', { priority: 2.5 }), 'HOLDFAST_INVALID_PRIORITY', /got 2\.5/, 'priority'],
    ['priority as a string', () => client.publish('t', 'x', { priority: '5' as unknown as number }), 'HOLDFAST_INVALID_PRIORITY', /got 5/, 'priority'],
    ['retain not a boolean', () => client.publish('t', 'x', { retain: 1 as unknown as boolean }), A, /retain must be a boolean; got number/, 'retain'],
  ];

  for (const [rule, call, code, message, field] of rules) {
    it(`throws at the call site: ${rule}`, () => {
      assert.throws(call, isHoldfastError(code, message, field));
    });
  }

  it('throws CLOSED after close()', async () => {
    const closedDir = tempDir('validation-closed');
    const closed = await open({ broker: broker.url, clientId: 'dev-closed', cacheDir: closedDir.path });
    try {
      await closed.close();
      assert.throws(() => closed.publish('sensors/dev-closed', 'x'), isHoldfastError('HOLDFAST_CLOSED', /publish\(\) after close\(\)/));
    } finally {
      closedDir.remove();
    }
  });

  it('a rejected call affects nothing already accepted, nor what follows', async () => {
    const seqs: number[] = [];
    for (let n = 1; n <= 20; n++) {
      seqs.push(client.publish('sensors/dev-valid-a', JSON.stringify({ device: 'dev-valid-a', n })));
      assert.throws(() => client.publish('bad/#', 'x'));
      assert.throws(() => client.publish('sensors/dev-valid-a', 7 as unknown as string));
    }
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, 'rejected calls consume no seq');
    const report = await auditor.waitFor({ 'dev-valid-a': Array.from({ length: 20 }, (_, i) => i + 1) }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
  });

  it('copies byte payloads, so the caller may reuse its buffer at once', async () => {
    const buf = Buffer.from(JSON.stringify({ device: 'dev-valid-b', n: 1 }));
    client.publish('sensors/dev-valid-b', buf);
    buf.fill(0);
    const report = await auditor.waitFor({ 'dev-valid-b': [1] }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
  });
});
