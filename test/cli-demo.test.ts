/**
 * `holdfast demo`: the README's first command. Link cuts, a stall and a power cut of the device must
 * end with lost 0, duplicates 0 and reordered 0, delivered counted at the auditor (shorter runs than the
 * default 30 s).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBroker, type Broker } from '@holdfast/testkit';
import { runCli, startCli } from './fixtures/cli-run.js';

/** delivered may exceed accepted by a reading publish() took as the power was cut, and says so. */
const PASS = /^PASS: accepted \d+, delivered \d+( \(\d+ taken by publish\(\) as the power was cut, before the device could confirm (it|them)\))?, lost 0, duplicates 0, reordered 0$/;

describe('holdfast demo', () => {
  it('--json on the embedded broker: lost 0, duplicates 0, reordered 0, everything accepted delivered', async () => {
    const r = await runCli(['demo', '--duration', '10', '--json'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'only the verdict on stdout');
    const verdict = JSON.parse(lines[0]!) as Record<string, number>;
    assert.deepEqual(Object.keys(verdict), ['accepted', 'delivered', 'lost', 'duplicates', 'outOfOrder', 'unconfirmed']);
    assert.ok(verdict.accepted! > 20, `readings were accepted: ${lines[0]}`);
    assert.deepEqual([verdict.lost, verdict.duplicates, verdict.outOfOrder], [0, 0, 0]);
    assert.equal(verdict.delivered, verdict.accepted! + verdict.unconfirmed!);
  });

  it('the readable run narrates the faults and ends with a verdict line', async () => {
    const r = await runCli(['demo', '--duration', '6'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout, /embedded Aedes broker/);
    assert.equal(r.stdout.match(/LINK CUT \d/g)?.length, 3);
    assert.match(r.stdout, /LINK STALL/);
    assert.match(r.stdout, /POWER CUT/);
    assert.match(r.stdout, /device restarted on the same cache \(\d+ cached readings?, state \w+\)/);
    assert.match(r.stdout.trim().split('\n').at(-1)!, PASS);
    // Progress lines: counts that add up (waiting = accepted − delivered), the device's state or its power cut.
    const progress = r.stdout.split('\n').filter((l) => / device .*: accepted /.test(l));
    assert.ok(progress.length > 0, r.stdout);
    for (const line of progress) {
      const [, accepted, delivered, waiting] = /accepted (\d+), delivered (\d+), waiting (\d+)$/.exec(line) ?? [];
      assert.equal(Number(waiting), Math.max(0, Number(accepted) - Number(delivered)), line);
      assert.match(line, / device (starting|POWERED OFF|\w+, (online|OFFLINE))/);
    }
  });

  it('Ctrl-C ends the faults early, drains, and still gives the verdict', async () => {
    const demo = startCli(['demo', '--duration', '120']);
    await demo.waitForLine((l) => l.includes('publishes through a fault-injecting link'), 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    demo.kill('SIGINT');
    const r = await demo.done;
    assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout.trim().split('\n').at(-1)!, PASS);
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
      assert.deepEqual([verdict.lost, verdict.duplicates, verdict.outOfOrder], [0, 0, 0]);
      assert.equal(verdict.delivered, verdict.accepted! + verdict.unconfirmed!);
    });
  });
});
