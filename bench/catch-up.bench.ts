/**
 * catch-up: a device comes back from an outage with a backlog of cached readings over a slow link
 * (the testkit proxy adds rtt/2 each way), while new readings keep arriving at 10/s. Measures the time
 * from reconnect to an empty cache with bulk on, and the one-at-a-time rate over the same link.
 *
 * `--fsync-ms F` runs the whole bench under the testkit's slow-fsync shim, every flush F ms slower: an
 * SD card (the bench starts itself again with the shim preloaded).
 *
 *   pnpm bench catch-up [--json] [--quick] [--rtt-ms 100] [--backlog 60000] [--window-s 10] [--fsync-ms 8]
 */
import { spawnSync } from 'node:child_process';
import { open, type HoldfastClient } from 'holdfast';
import { SLOW_FSYNC_MS_ENV, slowFsync, startBroker, startLinkProxy, type LinkProxy } from '@holdfast/testkit';
import { describeMachine, fmt, note, parseBenchArgs, report, round, sleep, tempDir } from './lib/common.js';

const args = parseBenchArgs(['rtt-ms', 'backlog', 'window-s', 'fsync-ms']);
const fsyncMs = args.numbers['fsync-ms'];
if (fsyncMs !== undefined && process.env[SLOW_FSYNC_MS_ENV] === undefined) {
  // An LD_PRELOAD shim applies from a process's start: run again, under it.
  const slow = slowFsync(fsyncMs);
  const run = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, ...slow.env } });
  slow.remove();
  process.exit(run.status ?? 1);
}
const rttMs = args.numbers['rtt-ms'] ?? 100;
const backlog = args.numbers.backlog ?? (args.quick ? 5000 : 60_000);
const windowSeconds = args.numbers['window-s'] ?? (args.quick ? 3 : 10);
const NEW_READINGS_PER_SECOND = 10;

const broker = await startBroker({ log: note });
const cleanups: Array<() => Promise<void> | void> = [];

/** A reading as a field device would send it. */
function reading(device: string, n: number): string {
  return JSON.stringify({ device, n, t: Date.now(), celsius: 21.5 });
}

/** Opens a client behind a refusing link and caches `count` readings (flush() spills while offline). */
async function offlineClientWithBacklog(name: string, count: number, bulk: boolean): Promise<{ client: HoldfastClient; link: LinkProxy }> {
  const link = await startLinkProxy({ targetPort: broker.port });
  cleanups.push(() => link.close());
  await link.refuse(true);
  const dir = tempDir(name);
  cleanups.push(() => dir.remove());
  const client = await open({
    broker: link.url,
    clientId: `bench-${name}`,
    cacheDir: dir.path,
    session: { clean: true },
    reconnect: { minMs: 100, maxMs: 300 },
    highWater: { messages: count + 1 },
    bulk: bulk ? {} : false,
  });
  cleanups.push(() => client.close());
  for (let n = 1; n <= count; n++) client.publish(`sensors/${name}/temperature`, reading(name, n));
  await client.flush();
  link.setLatency(rttMs / 2);
  return { client, link };
}

/** New readings at 10/s, as the measurement loop keeps running while the backlog drains. */
function keepPublishing(client: HoldfastClient, name: string, from: number): () => void {
  let n = from;
  const timer = setInterval(() => client.publish(`sensors/${name}/temperature`, reading(name, n++)), 1000 / NEW_READINGS_PER_SECOND);
  return () => clearInterval(timer);
}

/**
 * Resolves when the whole backlog is delivered and the cache is back to live traffic: empty, or
 * holding less than one second of new readings. Over a slow link the cache never reaches exactly zero
 * while readings arrive at 10/s: each QoS 2 exchange takes two round trips, and the readings that
 * arrive meanwhile go out in the next bulk.
 */
async function caughtUp(client: HoldfastClient, deliveredTarget: number): Promise<number> {
  for (;;) {
    const s = client.stats();
    if (s.delivered >= deliveredTarget && (s.state === 'direct' || s.cached.messages < NEW_READINGS_PER_SECOND)) return performance.now();
    await sleep(5);
  }
}

const connected = (client: HoldfastClient): Promise<number> =>
  new Promise((resolve) => client.once('connect', () => resolve(performance.now())));

try {
  // Bulk on: time from reconnect to an empty cache.
  const bulk = await offlineClientWithBacklog('catchup-bulk', backlog, true);
  note(`bulk: ${fmt(bulk.client.stats().cached.messages)} readings cached; link up with ${rttMs} ms RTT`);
  const up = connected(bulk.client);
  await bulk.link.refuse(false);
  const stopBulkReadings = keepPublishing(bulk.client, 'catchup-bulk', backlog + 1);
  const t0 = await up;
  const deliveredBefore = bulk.client.stats().delivered;
  const t1 = await caughtUp(bulk.client, deliveredBefore + backlog);
  stopBulkReadings();
  const drainSeconds = (t1 - t0) / 1000;
  const bulkDelivered = bulk.client.stats().delivered - deliveredBefore;
  const bulkReadingsPerSecond = bulkDelivered / drainSeconds;
  note(`bulk: caught up, ${fmt(bulkDelivered)} readings delivered in ${drainSeconds.toFixed(2)} s`);
  await bulk.client.close();

  // Bulk off: the one-at-a-time rate over the same link, measured over a fixed window of the drain.
  const single = await offlineClientWithBacklog('catchup-single', Math.max(200, windowSeconds * 50), false);
  const singleUp = connected(single.client);
  await single.link.refuse(false);
  const stopSingleReadings = keepPublishing(single.client, 'catchup-single', 1_000_000);
  const s0 = await singleUp;
  const singleBefore = single.client.stats().delivered;
  await sleep(windowSeconds * 1000);
  const oneAtATimePerSecond = (single.client.stats().delivered - singleBefore) / ((performance.now() - s0) / 1000);
  stopSingleReadings();
  await single.client.close();
  const oneAtATimeHours = backlog / oneAtATimePerSecond / 3600;

  report(
    args,
    { bench: 'catch-up', rttMs, fsyncMs: fsyncMs ?? 0, backlog, bulk: true, drainSeconds: round(drainSeconds, 2), bulkReadingsPerSecond: Math.round(bulkReadingsPerSecond), oneAtATimePerSecond: round(oneAtATimePerSecond, 2) },
    [
      ['link RTT (proxy, rtt/2 each way)', `${rttMs} ms`],
      ['injected flush latency', `${fsyncMs ?? 0} ms`],
      ['backlog (+10 new readings/s)', fmt(backlog)],
      ['bulk: reconnect → caught up', `${drainSeconds.toFixed(2)} s${rttMs === 100 && backlog >= 60_000 ? ' (target ≤ 30 s)' : ''}`],
      ['bulk readings/s', fmt(bulkReadingsPerSecond)],
      ['one at a time msg/s', `${oneAtATimePerSecond.toFixed(2)} (over ${windowSeconds} s)`],
      ['one at a time, same backlog', oneAtATimePerSecond > NEW_READINGS_PER_SECOND ? `~${(oneAtATimeHours * 60).toFixed(1)} min` : 'never (slower than the 10/s intake)'],
    ],
    describeMachine(broker.kind),
  );
} finally {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  await broker.close();
}
