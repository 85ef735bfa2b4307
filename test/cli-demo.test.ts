/**
 * `holdfast demo`: the README's first command. Link cuts, a stall and a power cut of the device must
 * end with lost 0 and delivered equal to accepted (shorter runs than the default 30 s).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBroker, type Broker } from '@holdfast/testkit';
import { runCli, startCli } from './fixtures/cli-run.js';

describe('holdfast demo', () => {
  it('--json on the embedded broker: lost 0, delivered equal to accepted', async () => {
    const r = await runCli(['demo', '--duration', '10', '--json'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'only the verdict on stdout');
    const verdict = JSON.parse(lines[0]!) as Record<string, number>;
    assert.deepEqual(Object.keys(verdict), ['accepted', 'delivered', 'lost', 'duplicates', 'outOfOrder']);
    assert.ok(verdict.accepted! > 20, `readings were accepted: ${lines[0]}`);
    assert.equal(verdict.lost, 0);
    assert.equal(verdict.delivered, verdict.accepted);
  });

  it('the readable run narrates the faults and ends with a verdict line', async () => {
    const r = await runCli(['demo', '--duration', '6'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout, /embedded Aedes broker/);
    assert.equal(r.stdout.match(/LINK CUT \d/g)?.length, 3);
    assert.match(r.stdout, /LINK STALL/);
    assert.match(r.stdout, /POWER CUT/);
    assert.match(r.stdout, /device restarted on the same cache/);
    assert.match(r.stdout.trim().split('\n').at(-1)!, /^PASS: accepted (\d+), delivered \1, lost 0, duplicates \d+, reordered \d+$/);
  });

  it('Ctrl-C ends the faults early, drains, and still gives the verdict', async () => {
    const demo = startCli(['demo', '--duration', '120']);
    await demo.waitForLine((l) => l.includes('publishes through a fault-injecting link'), 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    demo.kill('SIGINT');
    const r = await demo.done;
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout.trim().split('\n').at(-1)!, /^PASS: accepted (\d+), delivered \1, lost 0/);
  });

  describe('with --broker', () => {
    let broker: Broker;
    before(async () => {
      broker = await startBroker();
    });
    after(async () => {
      await broker.close();
    });

    it('runs against an existing broker, over MQTT 5 when it speaks it', async () => {
      const protocol = broker.protocolVersions.includes(5) ? '5' : '4';
      const r = await runCli(['demo', '--broker', broker.url, '--protocol', protocol, '--duration', '6', '--json'], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
      const verdict = JSON.parse(r.stdout) as Record<string, number>;
      assert.equal(verdict.lost, 0);
      assert.equal(verdict.delivered, verdict.accepted);
    });
  });
});
