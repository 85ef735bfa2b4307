import { join } from 'node:path';
import { open, type HoldfastOptions } from 'holdfast';
import { defaultClientId } from '../args/connection.js';
import type { PublisherArgs } from '../args/publisher-flags.js';
import { layered, loadPublisherOptions, readConfigFile } from '../args/publisher-options.js';
import { UsageError } from '../args/usage-error.js';
import { parseChoice, parseDuration, parseInteger, parseText } from '../args/values.js';
import { onStopSignal } from '../output/signals.js';
import { PROFILE_NAMES, type ProfileName } from '../simulator/profiles.js';
import { Fleet, topicFor, type FleetMember } from './fleet.js';
import { Reporter, type Publisher } from './reporter.js';
import { StdinSource } from './stdin.js';

/** Runs `holdfast publish`: validates every flag, opens one client per device, runs the source, closes. */
export interface PublishArgs extends PublisherArgs {
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

export async function runPublish(args: PublishArgs): Promise<number> {
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

