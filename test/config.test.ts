/**
 * loadConfig(): the HOLDFAST_* mapping, precedence (defaults < file < env < overrides), secrets given
 * as files, and one test per validation rule: each error is INVALID_OPTION naming the field, its
 * source and what is allowed, and never shows a secret.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ENV_VARS, ErrorCodes, HoldfastError, loadConfig, open, type LoadConfigOptions } from 'holdfast';
import { tempDir } from './helpers.js';

const dir = tempDir('config');
after(() => dir.remove());

const BASE_ENV = { HOLDFAST_BROKER: 'mqtt://127.0.0.1:1883', HOLDFAST_CLIENT_ID: 'dev-1' };
let n = 0;
function file(content: unknown): string {
  const path = join(dir.path, `config-${++n}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

async function rejects(options: LoadConfigOptions, field: string, pattern: RegExp): Promise<HoldfastError> {
  let caught: unknown;
  try {
    await loadConfig(options);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof HoldfastError, `expected a HoldfastError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCodes.INVALID_OPTION);
  assert.equal(caught.details?.field, field);
  assert.match(caught.message, pattern);
  return caught;
}

describe('loadConfig: sources and precedence', () => {
  it('leaves unset fields out, so open() applies its defaults', async () => {
    assert.deepEqual(await loadConfig({ env: BASE_ENV }), { broker: 'mqtt://127.0.0.1:1883', clientId: 'dev-1' });
  });

  it('maps every documented HOLDFAST_* variable to its option', async () => {
    const samples: Record<string, [string, unknown]> = {
      HOLDFAST_BROKER: ['mqtts://broker.example:8883', 'mqtts://broker.example:8883'],
      HOLDFAST_CLIENT_ID: ['dev-9', 'dev-9'],
      HOLDFAST_CACHE_DIR: ['/var/lib/holdfast', '/var/lib/holdfast'],
      HOLDFAST_QOS: ['1', 1],
      HOLDFAST_DURABILITY: ['journal', 'journal'],
      HOLDFAST_TIMEOUT_MS: ['2500', 2500],
      HOLDFAST_WATCHDOG_MS: ['45000', 45000],
      HOLDFAST_DEAD_LETTER_AFTER_DISCONNECTS: ['3', 3],
      HOLDFAST_HIGH_WATER_MESSAGES: ['500', 500],
      HOLDFAST_HIGH_WATER_BYTES: ['65536', 65536],
      HOLDFAST_MAX_CACHE_MESSAGES: ['1000', 1000],
      HOLDFAST_MAX_CACHE_BYTES: ['1048576', 1048576],
      HOLDFAST_BULK: ['true', {}],
      HOLDFAST_BULK_MAX_MESSAGES: ['50', 50],
      HOLDFAST_BULK_MAX_BYTES: ['4096', 4096],
      HOLDFAST_BULK_TOPIC: ['bulk/dev-9', 'bulk/dev-9'],
      HOLDFAST_RECONNECT_MIN_MS: ['200', 200],
      HOLDFAST_RECONNECT_MAX_MS: ['9000', 9000],
      HOLDFAST_SESSION_CLEAN: ['true', true],
      HOLDFAST_SESSION_EXPIRY_SEC: ['3600', 3600],
      HOLDFAST_PROTOCOL_VERSION: ['4', 4],
      HOLDFAST_KEEPALIVE_SEC: ['15', 15],
      HOLDFAST_CONNECT_TIMEOUT_MS: ['3000', 3000],
      HOLDFAST_CLOSE_TIMEOUT_MS: ['4000', 4000],
      HOLDFAST_USERNAME: ['sensor', 'sensor'],
      HOLDFAST_PASSWORD: ['s3cret', 's3cret'],
      HOLDFAST_TLS_PASSPHRASE: ['phrase', 'phrase'],
      HOLDFAST_TLS_REJECT_UNAUTHORIZED: ['false', false],
      HOLDFAST_CACHE_KEY: ['00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'],
      // Read by the worker at open(), like the key file it names: loadConfig passes the path through.
      HOLDFAST_CACHE_KEY_FILE: ['/etc/holdfast/cache.key', '/etc/holdfast/cache.key'],
      HOLDFAST_HEALTH: ['true', {}],
      HOLDFAST_HEALTH_PORT: ['9100', 9100],
      HOLDFAST_HEALTH_HOST: ['0.0.0.0', '0.0.0.0'],
      HOLDFAST_LOG_LEVEL: ['info', 'info'],
    };
    const fileVars = ['HOLDFAST_PASSWORD_FILE', 'HOLDFAST_TLS_CA_FILE', 'HOLDFAST_TLS_CERT_FILE', 'HOLDFAST_TLS_KEY_FILE', 'HOLDFAST_TLS_PASSPHRASE_FILE'];
    assert.deepEqual(Object.keys(ENV_VARS).sort(), [...Object.keys(samples), ...fileVars].sort(), 'every variable is tested');
    for (const [name, [raw, expected]] of Object.entries(samples)) {
      const config = (await loadConfig({ env: { ...BASE_ENV, [name]: raw } })) as unknown as Record<string, unknown>;
      const path = ENV_VARS[name]![0].split('.');
      let value: unknown = config;
      for (const part of path) value = (value as Record<string, unknown>)[part];
      assert.deepEqual(value, expected, name);
    }
  });

  it('reads the *_FILE variables: secrets from files, with one trailing newline removed', async () => {
    const pw = file('pa55word\n');
    const ca = file('-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n');
    const cert = file('CERT');
    const key = file('KEY');
    const phrase = file('keyphrase\r\n');
    const config = await loadConfig({
      env: { ...BASE_ENV, HOLDFAST_PASSWORD_FILE: pw, HOLDFAST_TLS_CA_FILE: ca, HOLDFAST_TLS_CERT_FILE: cert, HOLDFAST_TLS_KEY_FILE: key, HOLDFAST_TLS_PASSPHRASE_FILE: phrase },
    });
    assert.equal(config.password, 'pa55word');
    assert.ok(Buffer.isBuffer(config.tls?.ca));
    assert.match(String(config.tls?.ca), /BEGIN CERTIFICATE/);
    assert.equal(String(config.tls?.cert), 'CERT');
    assert.equal(String(config.tls?.key), 'KEY');
    assert.equal(config.tls?.passphrase, 'keyphrase');
    assert.equal('passwordFile' in config, false);
    assert.equal('caFile' in (config.tls ?? {}), false);
  });

  it('precedence is defaults < file < env < overrides, merging nested sections', async () => {
    const path = file({ broker: 'mqtt://from-file:1883', clientId: 'file-id', timeoutMs: 111, reconnect: { minMs: 300 }, maxCache: { messages: 10 } });
    const fileOnly = await loadConfig({ file: path, env: {} });
    assert.equal(fileOnly.broker, 'mqtt://from-file:1883');
    assert.equal(fileOnly.timeoutMs, 111);

    const withEnv = await loadConfig({ file: path, env: { HOLDFAST_TIMEOUT_MS: '222', HOLDFAST_RECONNECT_MAX_MS: '5000' } });
    assert.equal(withEnv.timeoutMs, 222, 'env beats the file');
    assert.equal(withEnv.clientId, 'file-id', 'what env does not set comes from the file');
    assert.deepEqual(withEnv.reconnect, { minMs: 300, maxMs: 5000 }, 'sections merge field by field');

    const all = await loadConfig({ file: path, env: { HOLDFAST_TIMEOUT_MS: '222' }, overrides: { timeoutMs: 333, maxCache: { bytes: 8192 } } });
    assert.equal(all.timeoutMs, 333, 'overrides beat env');
    assert.deepEqual(all.maxCache, { messages: 10, bytes: 8192 });
  });

  it('takes the file from HOLDFAST_CONFIG_FILE when none is given, and an explicit file wins', async () => {
    const fromEnv = file({ broker: 'mqtt://env-named:1883', clientId: 'a' });
    const explicit = file({ broker: 'mqtt://explicit:1883', clientId: 'b' });
    assert.equal((await loadConfig({ env: { HOLDFAST_CONFIG_FILE: fromEnv } })).broker, 'mqtt://env-named:1883');
    assert.equal((await loadConfig({ file: explicit, env: { HOLDFAST_CONFIG_FILE: fromEnv } })).broker, 'mqtt://explicit:1883');
  });

  it('a higher layer giving a secret as a file replaces the lower layer inline value, and back', async () => {
    const pw = file('from-file');
    const path = file({ broker: 'mqtt://h:1883', clientId: 'a', password: 'inline', tls: { ca: 'INLINE-CA' } });
    const config = await loadConfig({ file: path, env: { HOLDFAST_PASSWORD_FILE: pw } });
    assert.equal(config.password, 'from-file');
    const back = await loadConfig({ file: path, env: { HOLDFAST_PASSWORD_FILE: pw }, overrides: { password: 'explicit' } });
    assert.equal(back.password, 'explicit');
    assert.equal(back.tls?.ca, 'INLINE-CA');
  });

  it('treats empty variables as unset and ignores unknown HOLDFAST_* variables', async () => {
    const config = await loadConfig({ env: { ...BASE_ENV, HOLDFAST_TIMEOUT_MS: '', HOLDFAST_REQUIRE_MOSQUITTO: '1', HOLDFAST_SOMETHING_ELSE: 'x' } });
    assert.deepEqual(config, { broker: BASE_ENV.HOLDFAST_BROKER, clientId: 'dev-1' });
  });

  it('reads booleans as true/false, 1/0, yes/no, on/off', async () => {
    for (const [raw, expected] of [['TRUE', true], ['1', true], ['yes', true], ['on', true], ['false', false], ['0', false], ['no', false], ['off', false]] as const) {
      assert.equal((await loadConfig({ env: { ...BASE_ENV, HOLDFAST_SESSION_CLEAN: raw } })).session?.clean, expected, raw);
    }
  });

  it('HOLDFAST_BULK=false turns off a bulk section from the file', async () => {
    const path = file({ broker: 'mqtt://h:1883', clientId: 'a', bulk: { maxMessages: 10 } });
    assert.equal((await loadConfig({ file: path, env: { HOLDFAST_BULK: 'false' } })).bulk, false);
    assert.deepEqual((await loadConfig({ file: path, env: { HOLDFAST_BULK_TOPIC: 't/bulk' } })).bulk, { maxMessages: 10, topic: 't/bulk' });
  });

  it('HOLDFAST_HEALTH=false turns off a health section from the file; a port alone turns it on', async () => {
    const path = file({ broker: 'mqtt://h:1883', clientId: 'a', health: { port: 9464 } });
    assert.equal((await loadConfig({ file: path, env: { HOLDFAST_HEALTH: 'false' } })).health, false);
    assert.deepEqual((await loadConfig({ env: { ...BASE_ENV, HOLDFAST_HEALTH_PORT: '0' } })).health, { port: 0 });
  });

  it('a cache key file in the environment replaces the file\'s inline cacheKey', async () => {
    const path = file({ broker: 'mqtt://h:1883', clientId: 'a', cacheKey: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' });
    const config = await loadConfig({ file: path, env: { HOLDFAST_CACHE_KEY_FILE: '/run/secrets/cache.key' } });
    assert.equal(config.cacheKey, undefined);
    assert.equal(config.cacheKeyFile, '/run/secrets/cache.key');
  });

  it('returns options that open() accepts', async () => {
    const cacheDir = join(dir.path, 'cache');
    const config = await loadConfig({ env: { HOLDFAST_BROKER: 'mqtt://127.0.0.1:1', HOLDFAST_CLIENT_ID: 'cfg-open', HOLDFAST_CACHE_DIR: cacheDir, HOLDFAST_RECONNECT_MIN_MS: '1000' } });
    const client = await open(config);
    try {
      assert.equal(client.stats().connected, false);
    } finally {
      await client.close();
    }
  });
});

describe('loadConfig: each rule names the field, its source and what is allowed', () => {
  it('an environment variable that is not an integer', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_TIMEOUT_MS: '5s' } }, 'HOLDFAST_TIMEOUT_MS', /^environment: HOLDFAST_TIMEOUT_MS must be an integer from 10 to 3600000; got "5s"$/);
  });

  it('an integer out of range', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_KEEPALIVE_SEC: '0' } }, 'HOLDFAST_KEEPALIVE_SEC', /must be an integer from 1 to 65535; got 0/);
    await rejects({ env: { ...BASE_ENV, HOLDFAST_MAX_CACHE_MESSAGES: '-5' } }, 'HOLDFAST_MAX_CACHE_MESSAGES', /from 1 to 1000000000/);
  });

  it('qos, protocolVersion and durability are enumerations', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_QOS: '0' } }, 'HOLDFAST_QOS', /must be 1 or 2; got 0/);
    await rejects({ env: { ...BASE_ENV, HOLDFAST_PROTOCOL_VERSION: '3' } }, 'HOLDFAST_PROTOCOL_VERSION', /must be 4 \(MQTT 3\.1\.1\) or 5/);
    await rejects({ env: { ...BASE_ENV, HOLDFAST_DURABILITY: 'always' } }, 'HOLDFAST_DURABILITY', /must be 'spill' or 'journal'; got "always"/);
  });

  it('a boolean variable that is not a boolean', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_SESSION_CLEAN: 'maybe' } }, 'HOLDFAST_SESSION_CLEAN', /must be a boolean/);
    await rejects({ env: { ...BASE_ENV, HOLDFAST_BULK: 'maybe' } }, 'HOLDFAST_BULK', /must be false, true or/);
  });

  it('bulk variables while HOLDFAST_BULK=false', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_BULK: 'false', HOLDFAST_BULK_TOPIC: 'x' } }, 'HOLDFAST_BULK_TOPIC', /HOLDFAST_BULK turns bulk off/);
  });

  it('health: a switch, a port range and variables while HOLDFAST_HEALTH=false', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_HEALTH: 'maybe' } }, 'HOLDFAST_HEALTH', /must be false or \{ port, host \}/);
    await rejects({ env: { ...BASE_ENV, HOLDFAST_HEALTH_PORT: '70000' } }, 'HOLDFAST_HEALTH_PORT', /from 0 to 65535/);
    await rejects({ env: { ...BASE_ENV, HOLDFAST_HEALTH: 'false', HOLDFAST_HEALTH_PORT: '9464' } }, 'HOLDFAST_HEALTH_PORT', /HOLDFAST_HEALTH turns health off/);
  });

  it('logLevel is an enumeration', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_LOG_LEVEL: 'verbose' } }, 'HOLDFAST_LOG_LEVEL', /must be one of 'silent', 'fatal', 'error', 'warn', 'info', 'debug'; got "verbose"/);
  });

  it('a cache key that is not 32 bytes, or given with a key file in the same layer, is reported without showing it', async () => {
    const short = await rejects({ env: { ...BASE_ENV, HOLDFAST_CACHE_KEY: 'abcd1234' } }, 'cacheKey', /cacheKey must be a 32-byte key/);
    assert.doesNotMatch(JSON.stringify({ m: short.message, d: short.details }), /abcd1234/);
    const both = await rejects({ env: { ...BASE_ENV, HOLDFAST_CACHE_KEY: 'abcd1234', HOLDFAST_CACHE_KEY_FILE: '/k' } }, 'HOLDFAST_CACHE_KEY_FILE', /given with cacheKey/);
    assert.doesNotMatch(JSON.stringify({ m: both.message, d: both.details }), /abcd1234/);
  });

  it('a broker URL with a wrong scheme, or with credentials (which stay hidden)', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_BROKER: 'http://h:1883' } }, 'HOLDFAST_BROKER', /scheme mqtt:, mqtts:, ws: or wss:/);
    const err = await rejects({ env: { ...BASE_ENV, HOLDFAST_BROKER: 'mqtt://user:hunter2@h:1883' } }, 'HOLDFAST_BROKER', /no credentials/);
    assert.doesNotMatch(JSON.stringify({ m: err.message, d: err.details }), /hunter2/);
  });

  it('an empty or wrongly typed string in the file', async () => {
    await rejects({ file: file({ broker: 'mqtt://h:1883', clientId: '' }), env: {} }, 'clientId', /^config file .*: clientId must be a non-empty string; got ""$/);
    await rejects({ file: file({ broker: 'mqtt://h:1883', clientId: 'a', cacheDir: 7 }), env: {} }, 'cacheDir', /cacheDir must be a non-empty string; got 7/);
  });

  it('an unknown key in the file, top-level or nested', async () => {
    await rejects({ file: file({ broker: 'mqtt://h:1883', clientId: 'a', timeout: 5 }), env: {} }, 'timeout', /timeout is not a known option/);
    await rejects({ file: file({ broker: 'mqtt://h:1883', clientId: 'a', tls: { caPath: 'x' } }), env: {} }, 'tls.caPath', /tls\.caPath is not a known option/);
  });

  it('a section that is not an object', async () => {
    await rejects({ file: file({ broker: 'mqtt://h:1883', clientId: 'a', reconnect: 5 }), env: {} }, 'reconnect', /reconnect must be an object; got 5/);
  });

  it('a file that is not a JSON object, or not JSON, without quoting its content', async () => {
    await rejects({ file: file([1, 2]), env: {} }, '(root)', /must be a JSON object of options; got an array/);
    const err = await rejects({ file: file('{"password": "hunter2",'), env: {} }, 'file', /is not valid JSON/);
    assert.doesNotMatch(err.message, /hunter2/);
  });

  it('a missing config file', async () => {
    await rejects({ file: join(dir.path, 'nope.json'), env: {} }, 'file', /cannot be read \(ENOENT\)/);
  });

  it('broker and clientId are required', async () => {
    await rejects({ env: { HOLDFAST_CLIENT_ID: 'a' } }, 'broker', /broker is required \(set it in the config file, HOLDFAST_BROKER or overrides\)/);
    await rejects({ env: { HOLDFAST_BROKER: 'mqtt://h:1883' } }, 'clientId', /clientId is required .*HOLDFAST_CLIENT_ID/);
  });

  it('reconnect.maxMs below reconnect.minMs, across layers', async () => {
    await rejects({ file: file({ broker: 'mqtt://h:1883', clientId: 'a', reconnect: { minMs: 5000 } }), env: { HOLDFAST_RECONNECT_MAX_MS: '1000' } }, 'reconnect.maxMs', /reconnect\.maxMs \(1000\) must be at least reconnect\.minMs \(5000\)/);
  });

  it('a TLS certificate without its key, or a key without its certificate', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_TLS_CERT_FILE: file('CERT') } }, 'tls.key', /tls\.key \(or tls\.keyFile\) must be given too/);
    await rejects({ env: BASE_ENV, overrides: { tls: { key: 'KEY' } } }, 'tls.cert', /mTLS needs both/);
  });

  it('a secret given inline and as a file in the same layer', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_PASSWORD: 'x', HOLDFAST_PASSWORD_FILE: file('y') } }, 'HOLDFAST_PASSWORD_FILE', /set one of them, not both/);
    await rejects({ file: file({ broker: 'mqtt://h:1883', clientId: 'a', tls: { ca: 'A', caFile: '/x' } }), env: {} }, 'tls.caFile', /tls\.caFile given with tls\.ca/);
  });

  it('a secret file that is missing or empty', async () => {
    await rejects({ env: { ...BASE_ENV, HOLDFAST_PASSWORD_FILE: join(dir.path, 'missing') } }, 'passwordFile', /passwordFile .*missing cannot be read \(ENOENT\)/);
    await rejects({ env: { ...BASE_ENV, HOLDFAST_TLS_CA_FILE: file('') } }, 'tls.caFile', /tls\.caFile .* cannot be read \(EMPTY\)/);
  });

  it('an invalid TLS value is reported without showing it', async () => {
    const err = await rejects({ env: BASE_ENV, overrides: { tls: { passphrase: 42 as unknown as string } } }, 'tls.passphrase', /tls\.passphrase must be a non-empty string; got \(hidden\)/);
    assert.doesNotMatch(err.message, /42/);
  });

  it('every problem in a layer is listed in details, the first one in the message', async () => {
    const err = await rejects({ env: { ...BASE_ENV, HOLDFAST_QOS: '7', HOLDFAST_TIMEOUT_MS: 'x' } }, 'HOLDFAST_QOS', /HOLDFAST_QOS/);
    assert.equal((err.details?.problems as string[]).length, 2);
  });
});

describe('loadConfig: the password never appears in an error', () => {
  let pwFile: string;
  before(() => {
    pwFile = file('correct-horse\n');
  });
  it('even when another field of the same layer is wrong', async () => {
    const err = await rejects({ env: { ...BASE_ENV, HOLDFAST_PASSWORD_FILE: pwFile, HOLDFAST_QOS: 'x' } }, 'HOLDFAST_QOS', /HOLDFAST_QOS/);
    assert.doesNotMatch(JSON.stringify({ m: err.message, d: err.details, s: err.stack }), /correct-horse/);
    const inline = await rejects({ env: BASE_ENV, overrides: { password: '' } }, 'password', /password must be a non-empty string; got \(hidden\)/);
    assert.ok(inline);
  });
});
