import type { Argv } from 'yargs';
import { parseProtocol } from '../args/connection.js';
import { UsageError } from '../args/usage-error.js';
import { parseDuration, parseText } from '../args/values.js';
import type { DemoSettings } from '../demo/run.js';
import { passed, verdictLine } from '../demo/verdict.js';
import type { RunContext } from './context.js';
import { onStopSignal } from '../output/signals.js';

const DEMO_FLAGS = {
  duration: { type: 'string', default: '30s', describe: 'How long the device publishes (then it drains), e.g. 30 or 2m; at least 5 s' },
  json: { type: 'boolean', default: false, describe: 'Print only the verdict, as {"accepted","delivered","lost","duplicates","outOfOrder","unconfirmed"}' },
  broker: { type: 'string', describe: 'Use this plain-TCP broker (mqtt://host:port) instead of the embedded Aedes broker' },
  protocol: { type: 'string', default: '4', describe: 'MQTT protocol of the device and auditor: 4 (3.1.1, all the embedded broker speaks) or 5' },
  interval: { type: 'string', default: '50ms', describe: 'Reading interval of the simulated device' },
  'cache-dir': { type: 'string', describe: 'Keep the device cache here (default: a temp dir removed at the end)' },
} as const;

/** The demo proxies the link itself, so it needs the broker's TCP host and port. */
function parseBroker(value: string | undefined): DemoSettings['broker'] {
  const text = parseText('--broker', value);
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError('--broker', 'a plain-TCP broker URL such as mqtt://127.0.0.1:1883', text);
  }
  if (url.protocol !== 'mqtt:' || !url.hostname) throw new UsageError('--broker', 'a plain-TCP broker URL such as mqtt://127.0.0.1:1883 (the demo puts a TCP link proxy in front of it)', text);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { host, port: url.port === '' ? 1883 : Number(url.port), url: `mqtt://${url.host}` };
}

export function registerDemo(y: Argv, ctx: RunContext): Argv {
  return y.command(
    'demo',
    'Watch holdfast lose nothing: link cuts, a stall and a power cut, on an embedded broker',
    (b) =>
      b
        .options(DEMO_FLAGS)
        .example('$0 demo', 'The 30-second tour (pnpm demo runs it)')
        .example('$0 demo --duration 10 --json', 'A short run that prints the verdict as JSON; exit code 1 unless PASS')
        .example('$0 demo --broker mqtt://127.0.0.1:1883 --protocol 5', 'The same against your own broker')
        .epilog(
          'One simulated device (journal durability: a reading is on disk once publish() returns) publishes through a TCP proxy that cuts the link three times and stalls it once; ' +
            'the device process is SIGKILLed once and restarted on the same cache. An auditor subscribed at the broker counts every reading. ' +
            'PASS (exit code 0) only with lost 0, duplicates 0 and reordered 0; delivered counts what reached the auditor.',
        ),
    async (argv) => {
      const settings: DemoSettings = {
        broker: parseBroker(argv.broker),
        durationMs: parseDuration('--duration', argv.duration, { minMs: 5000, maxMs: 3_600_000 }),
        intervalMs: parseDuration('--interval', argv.interval, { minMs: 5, maxMs: 10_000 }),
        protocolVersion: parseProtocol(argv.protocol) ?? 4,
        cacheDir: parseText('--cache-dir', argv['cache-dir']),
        json: argv.json,
      };
      if (settings.broker === undefined && settings.protocolVersion === 5) {
        throw new UsageError('--protocol', '4 with the embedded broker (Aedes speaks MQTT 3.1.1 only); pass --broker for MQTT 5');
      }
      // A persistent listener (not once()): the testkit's own signal hook stands aside while one exists.
      const stop = onStopSignal();
      try {
        const { runDemo } = await import('../demo/run.js');
        const verdict = await runDemo(settings, stop.signal);
        process.stdout.write(`${settings.json ? JSON.stringify(verdict) : verdictLine(verdict)}\n`);
        ctx.exitCode = passed(verdict) ? 0 : 1;
      } finally {
        stop.dispose();
      }
    },
  );
}
