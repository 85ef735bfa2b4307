/**
 * Guarantee 7: bad input gets a clear, typed error at the call site, and nothing else is lost.
 * One test per rule, in the manner of piscina's option-validation tests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { open, ErrorCodes, HoldfastError, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import { startAuditor, startBroker, type Auditor, type Broker } from '@holdfast/testkit';
import { extractReadingNumber, tempDir } from './helpers.js';

function isHoldfastError(code: string, mentions?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof HoldfastError, `expected a HoldfastError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (mentions) assert.match(err.message, mentions);
    return true;
  };
}

describe('open() option validation', () => {
  const base = { broker: 'mqtt://127.0.0.1:1', clientId: 'c', cacheDir: '/nonexistent-never-created' };
  const rules: Array<[string, unknown, RegExp]> = [
    ['options is not an object', 'mqtt://x', /must be an object/],
    ['clientId missing', { broker: base.broker }, /clientId must be a non-empty string/],
    ['clientId empty', { ...base, clientId: '' }, /clientId/],
    ['broker missing', { clientId: 'c' }, /broker must be/],
    ['broker not a URL', { ...base, broker: 'not a url' }, /broker must be a valid URL/],
    ['broker with another scheme', { ...base, broker: 'http://example.com' }, /mqtt:, mqtts:, ws: or wss:/],
    ['broker with credentials in the URL', { ...base, broker: 'mqtt://user:secret@host' }, /without credentials/],
    ['unknown option', { ...base, qos2: true }, /options\.qos2 is not a known option/],
    ['unknown nested option', { ...base, maxCache: { msgs: 1 } }, /options\.maxCache\.msgs is not a known option/],
    ['qos 0', { ...base, qos: 0 }, /options\.qos must be 1 or 2/],
    ['durability unknown', { ...base, durability: 'sync' }, /durability must be 'spill' or 'journal'/],
    ['timeoutMs negative', { ...base, timeoutMs: -1 }, /timeoutMs must be an integer from 10/],
    ['timeoutMs fractional', { ...base, timeoutMs: 1.5 }, /timeoutMs must be an integer/],
    ['highWater.messages zero', { ...base, highWater: { messages: 0 } }, /highWater\.messages/],
    ['maxCache.bytes too small', { ...base, maxCache: { bytes: 10 } }, /maxCache\.bytes must be an integer from 4096/],
    ['reconnect.maxMs below minMs', { ...base, reconnect: { minMs: 5000, maxMs: 1000 } }, /reconnect\.maxMs must be at least reconnect\.minMs/],
    ['session.clean not boolean', { ...base, session: { clean: 'no' } }, /session\.clean must be a boolean/],
    ['protocolVersion 3', { ...base, protocolVersion: 3 }, /protocolVersion must be 4 \(MQTT 3\.1\.1\) or 5/],
    ['bulk not an object', { ...base, bulk: 'yes' }, /bulk must be false, true or/],
    ['bulk.maxMessages zero', { ...base, bulk: { maxMessages: 0 } }, /bulk\.maxMessages/],
    ['tls cert without key', { ...base, tls: { cert: 'PEM' } }, /tls\.cert must be given together with tls\.key/],
    ['password empty', { ...base, password: '' }, /password must be a non-empty string; got \(hidden\)/],
    ['cacheDir empty', { ...base, cacheDir: '' }, /cacheDir must be a non-empty string/],
    ['logLevel unknown', { ...base, logLevel: 'verbose' }, /logLevel must be one of silent, fatal, error, warn, info, debug/],
    ['health not an object', { ...base, health: 9464 }, /health must be false or \{ port, host \}/],
  ];
  for (const [rule, input, message] of rules) {
    it(`rejects: ${rule}`, async () => {
      await assert.rejects(open(input as HoldfastOptions), isHoldfastError(ErrorCodes.INVALID_OPTION, message));
    });
  }

  it('never echoes a password or TLS key in an error', async () => {
    await assert.rejects(open({ ...base, password: 42 } as unknown as HoldfastOptions), (err: HoldfastError) => {
      assert.doesNotMatch(err.message, /42/);
      return true;
    });
    await assert.rejects(open({ ...base, tls: { key: 'SECRET-KEY' } } as unknown as HoldfastOptions), (err: HoldfastError) => {
      assert.doesNotMatch(err.message, /SECRET-KEY/);
      return true;
    });
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

  const T = ErrorCodes.INVALID_TOPIC;
  const P = ErrorCodes.INVALID_PAYLOAD;
  const rules: Array<[string, () => unknown, string, RegExp]> = [
    ['empty topic', () => client.publish('', 'x'), T, /must not be empty/],
    ["topic with '+'", () => client.publish('a/+/b', 'x'), T, /wildcards/],
    ["topic with '#'", () => client.publish('a/#', 'x'), T, /wildcards/],
    ['topic with NUL', () => client.publish('a\u0000b', 'x'), T, /NUL/],
    ['topic over 65,535 bytes', () => client.publish('é'.repeat(32_768), 'x'), T, /at most 65535 bytes/],
    ['topic with a lone surrogate', () => client.publish('a\ud800', 'x'), T, /lone surrogate/],
    ['topic not a string', () => client.publish(42 as unknown as string, 'x'), T, /must be a string/],
    ['payload a number', () => client.publish('t', 42 as unknown as string), P, /string, Buffer or Uint8Array; got number/],
    ['payload an object', () => client.publish('t', { v: 1 } as unknown as string), P, /got object/],
    ['payload null', () => client.publish('t', null as unknown as string), P, /got null/],
    ['payload an array', () => client.publish('t', [1] as unknown as string), P, /got an array/],
    ['qos 0', () => client.publish('t', 'x', { qos: 0 as 1 }), ErrorCodes.INVALID_QOS, /qos must be 1 or 2; got 0/],
    ['qos 3', () => client.publish('t', 'x', { qos: 3 as 1 }), ErrorCodes.INVALID_QOS, /got 3/],
    ['priority 0', () => client.publish('t', 'x', { priority: 0 }), ErrorCodes.INVALID_PRIORITY, /integer from 1 to 10; got 0/],
    ['priority 11', () => client.publish('t', 'x', { priority: 11 }), ErrorCodes.INVALID_PRIORITY, /got 11/],
    ['priority 2.5', () => client.publish('t', 'x', { priority: 2.5 }), ErrorCodes.INVALID_PRIORITY, /got 2.5/],
    ['priority as a string', () => client.publish('t', 'x', { priority: '5' as unknown as number }), ErrorCodes.INVALID_PRIORITY, /got 5/],
    ['unknown publish option', () => client.publish('t', 'x', { prio: 1 } as never), ErrorCodes.INVALID_ARGUMENT, /'prio' is not known/],
    ['retain not a boolean', () => client.publish('t', 'x', { retain: 1 as unknown as boolean }), ErrorCodes.INVALID_ARGUMENT, /retain must be a boolean/],
  ];

  for (const [rule, call, code, message] of rules) {
    it(`throws at the call site: ${rule}`, () => {
      assert.throws(call, isHoldfastError(code, message));
    });
  }

  it('a rejected call affects nothing already accepted, nor what follows', async () => {
    const seqs: number[] = [];
    for (let n = 1; n <= 20; n++) {
      seqs.push(client.publish('sensors/dev-valid', JSON.stringify({ device: 'dev-valid', n })));
      assert.throws(() => client.publish('bad/#', 'x'));
      assert.throws(() => client.publish('sensors/dev-valid', 7 as unknown as string));
    }
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, 'rejected calls consume no seq');
    await client.drained();
    const report = await auditor.waitFor({ 'dev-valid': Array.from({ length: 20 }, (_, i) => i + 1) }, 10_000);
    assert.deepEqual([report.lost, report.duplicates, report.outOfOrder], [0, 0, 0]);
    assert.equal(client.stats().accepted, 20);
  });

  it('copies byte payloads, so the caller may reuse its buffer at once', async () => {
    const buf = Buffer.from(JSON.stringify({ device: 'dev-valid', n: 21 }));
    client.publish('sensors/dev-valid', buf);
    buf.fill(0);
    await client.drained();
    const report = await auditor.waitFor({ 'dev-valid': Array.from({ length: 21 }, (_, i) => i + 1) }, 10_000);
    assert.equal(report.lost, 0);
  });
});
