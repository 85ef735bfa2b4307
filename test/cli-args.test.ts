/** `holdfast --help` and argument errors: every command documented, every bad flag named, exit code 2. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from './helpers.js';
import { runCli } from './fixtures/cli-run.js';

const dir = tempDir('cli-args');
// The publisher and the audit read HOLDFAST_* variables; a developer's own must not change these results.
const cleanEnv = { HOLDFAST_BROKER: '', HOLDFAST_CLIENT_ID: '', HOLDFAST_CONFIG_FILE: '', HOLDFAST_QOS: '', HOLDFAST_DURABILITY: '' };
after(() => dir.remove());

describe('holdfast --help', () => {
  it('lists publish, cache, audit and demo', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const command of ['publish', 'cache', 'audit', 'demo']) assert.match(r.stdout, new RegExp(`holdfast ${command}\\b`));
  });

  for (const command of [['publish'], ['cache', 'inspect'], ['cache', 'export'], ['audit'], ['demo']]) {
    it(`${command.join(' ')} --help has examples`, async () => {
      const r = await runCli([...command, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Examples:/);
      assert.match(r.stdout, new RegExp(`holdfast ${command.join(' ')} `));
    });
  }

  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    const manifest = JSON.parse(readFileSync(new URL('../packages/cli/package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), manifest.version);
  });

  it('no command is an error that says what to do', async () => {
    const r = await runCli([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Name a command/);
  });
});

describe('bad arguments name the flag and what is allowed (exit code 2)', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown flag', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--bogus'], /Unknown argument: bogus/],
    ['unknown command', ['frobnicate'], /Unknown argument: frobnicate/],
    ['no broker', ['publish', '--client-id', 'x'], /--broker must be given/],
    ['bad broker URL', ['publish', '--broker', 'http://x', '--client-id', 'x'], /--broker must be .*mqtt:/],
    ['qos', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--qos', '3'], /--qos must be one of 1, 2; got "3"/],
    ['durability', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--durability', 'fsync'], /--durability must be one of spill, journal/],
    ['interval', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--interval', '5 parsecs'], /--interval must be a duration such as 500ms, 5s/],
    ['count', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--count', '-4'], /--count must be an integer from 1/],
    ['devices', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--devices', '0'], /--devices must be an integer from 1 to 1000/],
    ['priority', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--priority', '11'], /--priority must be an integer from 1 to 10/],
    ['profile', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--profile', 'toaster'], /--profile must be one of sensor, camera, gateway, controller, mixed/],
    ['wildcard topic', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--topic', 'a/+/b'], /--topic must be a topic template without the wildcards/],
    ['protocol', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--protocol', '3'], /--protocol must be one of 4, 5/],
    ['cert without key', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--cert', 'c.pem'], /--cert must be given together with --key/],
    ['missing password file', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--password-file', '/nonexistent/pw'], /--password-file must be a readable file.*ENOENT/],
    ['missing cache key file', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--cache-key-file', '/nonexistent/key'], /--cache-key-file must be a readable file holding the cache key.*ENOENT/],
    ['missing config file', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--config', '/nonexistent/c.json'], /--config must be a readable JSON file/],
    ['stdin with a fleet', ['publish', '--broker', 'mqtt://127.0.0.1:1', '--stdin', '--devices', '2'], /--devices must be 1 with --stdin/],
    ['audit without broker', ['audit', '--topic', 'a/#'], /--broker must be given/],
    ['audit duration', ['audit', '--broker', 'mqtt://127.0.0.1:1', '--duration', 'forever'], /--duration must be a duration/],
    ['cache command missing', ['cache'], /Name a cache command: inspect or export/],
    ['export format', ['cache', 'export', '--format', 'csv'], /--format must be one of jsonl; got "csv"/],
    ['demo duration', ['demo', '--duration', '1'], /--duration must be a duration .* from 5000 ms/],
    ['demo TLS broker', ['demo', '--broker', 'mqtts://127.0.0.1:8883'], /--broker must be a plain-TCP broker URL/],
    ['demo MQTT 5 on Aedes', ['demo', '--protocol', '5'], /--protocol must be 4 with the embedded broker/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const r = await runCli(args, { cwd: dir.path, env: cleanEnv, timeoutMs: 20_000 });
      assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '', 'nothing started');
    });
  }

  it('a bad value in --config names the file and the field', async () => {
    const config = join(dir.path, 'bad.json');
    writeFileSync(config, JSON.stringify({ broker: 'mqtt://127.0.0.1:1', clientId: 'x', qos: 7 }));
    const r = await runCli(['publish', '--config', config], { cwd: dir.path, env: cleanEnv, timeoutMs: 20_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /config file .*bad\.json: qos must be 1 or 2; got 7/);
  });

  it('a bad HOLDFAST_* variable names the variable', async () => {
    const r = await runCli(['publish', '--broker', 'mqtt://127.0.0.1:1'], { cwd: dir.path, env: { ...cleanEnv, HOLDFAST_DURABILITY: 'sometimes' }, timeoutMs: 20_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /HOLDFAST_DURABILITY/);
  });

  it('a password in a config file never appears in an error', async () => {
    const config = join(dir.path, 'secret.json');
    writeFileSync(config, `{"broker": "mqtt://127.0.0.1:1", "password": "hunter2-secret", "qos": "two"`);
    const r = await runCli(['publish', '--config', config], { cwd: dir.path, env: cleanEnv, timeoutMs: 20_000 });
    assert.equal(r.code, 2);
    assert.doesNotMatch(r.stderr, /hunter2/);
  });
});
