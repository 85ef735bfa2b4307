import { join } from 'node:path';
import type { Argv } from 'yargs';
import { open, type HoldfastOptions } from 'holdfast';
import { CONNECTION_FLAGS, defaultClientId } from '../args/connection.js';
import { layered, loadPublisherOptions, PUBLISHER_FLAGS, readConfigFile, type PublisherArgs } from '../args/publisher-options.js';
import { UsageError } from '../args/usage-error.js';
import { parseChoice, parseDuration, parseInteger, parseText } from '../args/values.js';
import { Fleet, topicFor, type FleetMember } from '../publish/fleet.js';
import { Reporter, type Publisher } from '../publish/reporter.js';
import { StdinSource } from '../publish/stdin.js';
import { PROFILE_NAMES, type ProfileName } from '../simulator/profiles.js';
import type { RunContext } from './context.js';
import { onStopSignal } from '../output/signals.js';

const PUBLISH_FLAGS = {
  topic: { type: 'string', default: 'sensors/{device}/{kind}', describe: 'Topic template; {device} is the device id, {kind} is telemetry, status or event (stdin lines use "line")' },
  interval: { type: 'string', describe: 'Telemetry interval, e.g. 500ms or 5s (default: the profile’s own: sensor 1s, camera 5s, gateway 2s, controller 500ms)' },
  count: { type: 'string', describe: 'Telemetry readings per device, then wait until everything is delivered and exit (default: run until Ctrl-C)' },
  devices: { type: 'string', default: '1', describe: 'Simulated devices in this process; each has its own client id (<client-id>-<i>) and cache (<cache-dir>/<client-id>-<i>)' },
  profile: { type: 'string', default: 'sensor', describe: `Device profile: ${PROFILE_NAMES.join(', ')}, or mixed (the fleet cycles through them)` },
  priority: { type: 'string', default: '5', describe: 'Telemetry priority 1–10 (status is sent 2 lower, events 3 higher); for --stdin, every line' },
  stdin: { type: 'boolean', default: false, describe: 'Publish one message per line of standard input instead of simulated readings' },
  'stats-every': { type: 'string', default: '10s', describe: 'How often to log a stats line when not on a terminal' },
} as const;

interface PublishArgs extends PublisherArgs {
  topic: string;
  interval?: string | undefined;
  count?: string | undefined;
  devices: string;
  profile: string;
  priority: string;
  stdin: boolean;
  'stats-every': string;
}

interface Plan {
  members: Array<{ device: string; profile: ProfileName; options: HoldfastOptions }>;
  topic: string;
  intervalMs: number | undefined;
  count: number | undefined;
  priority: number;
  statsEveryMs: number;
}

/** Validates every flag before anything is opened, so a typo never leaves a half-started fleet. */
async function plan(args: PublishArgs): Promise<Plan> {
  const topic = parseText('--topic', args.topic) ?? '';
  if (/[+#\u0000]/.test(topic)) throw new UsageError('--topic', 'a topic template without the wildcards + and # (publishing needs a concrete topic)', topic);
  const devices = parseInteger('--devices', args.devices, 1, 1000) ?? 1;
  if (args.stdin && devices !== 1) throw new UsageError('--devices', '1 with --stdin (standard input feeds one client)', args.devices);
  const profile = parseChoice('--profile', args.profile, [...PROFILE_NAMES, 'mixed'] as const) ?? 'sensor';
  const config = readConfigFile(args.config);
  if (layered('--broker', args.broker, 'HOLDFAST_BROKER', config, 'broker') === undefined) {
    throw new UsageError('--broker', 'given (or HOLDFAST_BROKER, or broker in --config): a broker URL such as mqtt://broker:1883');
  }
  const baseId = layered('--client-id', args['client-id'], 'HOLDFAST_CLIENT_ID', config, 'clientId') ?? defaultClientId('holdfast');
  const cacheRoot = layered('--cache-dir', args['cache-dir'], 'HOLDFAST_CACHE_DIR', config, 'cacheDir') ?? './holdfast-cache';
  const members: Plan['members'] = [];
  for (let i = 0; i < devices; i++) {
    const device = devices === 1 ? baseId : `${baseId}-${i + 1}`;
    const deviceProfile: ProfileName = profile === 'mixed' ? (PROFILE_NAMES[i % PROFILE_NAMES.length] ?? 'sensor') : profile;
    members.push({ device, profile: deviceProfile, options: await loadPublisherOptions(args, device, devices === 1 ? cacheRoot : join(cacheRoot, device)) });
  }
  return {
    members,
    topic,
    intervalMs: args.interval === undefined ? undefined : parseDuration('--interval', args.interval, { minMs: 10 }),
    count: parseInteger('--count', args.count, 1, Number.MAX_SAFE_INTEGER),
    priority: parseInteger('--priority', args.priority, 1, 10) ?? 5,
    statsEveryMs: parseDuration('--stats-every', args['stats-every'], { minMs: 100 }),
  };
}

async function runPublish(args: PublishArgs): Promise<number> {
  const p = await plan(args);
  const stop = onStopSignal();
  const publishers: Publisher[] = [];
  let reporter: Reporter | undefined;
  try {
    for (const member of p.members) {
      const client = await open(member.options);
      publishers.push({ device: member.device, client });
    }
    reporter = new Reporter(publishers, p.statsEveryMs, process.stdout.isTTY === true);
    reporter.info('started', { devices: publishers.length, source: args.stdin ? 'stdin' : 'simulator' });

    let source: { stop(): void };
    let finished: Promise<unknown>;
    if (args.stdin) {
      const stdin = new StdinSource();
      source = stdin;
      const first = publishers[0]!;
      finished = stdin.run(first.client, topicFor(p.topic, first.device, 'line'), p.priority);
    } else {
      const members: FleetMember[] = p.members.map((m, i) => ({ device: m.device, profile: m.profile, client: publishers[i]!.client }));
      const fleet = new Fleet(members, { topic: p.topic, intervalMs: p.intervalMs, count: p.count, priority: p.priority }, reporter);
      source = fleet;
      finished = fleet.start();
    }
    // With a finite source, wait until everything is delivered; a signal cuts the wait short and the
    // rest is spilled to the cache by close(), to be sent on the next start.
    const ended = await Promise.race([finished.then(() => 'ended' as const), stop.signal]);
    source.stop();
    if (ended === 'ended') {
      reporter.info('input ended; waiting until everything is delivered');
      const delivered = Promise.all(publishers.map((x) => x.client.drained()));
      await Promise.race([delivered, stop.signal]);
    } else {
      reporter.info('stopping', { signal: ended });
    }
    return 0;
  } finally {
    stop.dispose();
    reporter?.stop();
    await Promise.all(publishers.map((x) => x.client.close()));
    // Counted after close(), so a reading delivered while closing is not missing from both columns.
    if (reporter) {
      const t = reporter.totals();
      reporter.info('closed', { accepted: t.accepted, delivered: t.delivered, cached: t.cached });
    }
  }
}

export function registerPublish(y: Argv, ctx: RunContext): Argv {
  return y.command(
    'publish',
    'Publish cyclic readings from simulated devices (or stdin lines) through holdfast',
    (b) =>
      b
        .options({ ...CONNECTION_FLAGS, ...PUBLISHER_FLAGS, ...PUBLISH_FLAGS })
        .group(Object.keys(CONNECTION_FLAGS), 'Connection:')
        .group(Object.keys(PUBLISHER_FLAGS), 'Publisher:')
        .example('$0 publish --broker mqtt://127.0.0.1:1883 --client-id pump-7', 'One simulated sensor, a reading a second')
        .example('$0 publish --broker mqtt://broker:1883 --client-id site-a --devices 4 --profile mixed --interval 500ms', 'A small mixed fleet in one process')
        .example('$0 publish --broker mqtt://broker:1883 --client-id cam-1 --profile camera --count 100 --durability journal', '100 readings, committed before sending, then exit once delivered')
        .example("journalctl -o cat -u sensor | $0 publish --stdin --broker mqtts://broker:8883 --ca ca.pem --client-id gw --topic 'logs/{device}'", 'One message per input line, over TLS')
        .example('$0 publish --config /etc/holdfast/publisher.json --client-id dev-001', 'Library options from a JSON file; flags override it')
        .epilog(
          'Settings come from, lowest first: library defaults, --config, HOLDFAST_* environment variables (HOLDFAST_BROKER, HOLDFAST_CLIENT_ID, HOLDFAST_PASSWORD, …), flags. ' +
            'Payloads are JSON {device, profile, kind, n, ts, …}. Ctrl-C or SIGTERM closes gracefully: pending readings are spilled to the cache and sent first on the next start; the exit code is 0.',
        ),
    async (argv) => {
      ctx.exitCode = await runPublish(argv);
    },
  );
}
