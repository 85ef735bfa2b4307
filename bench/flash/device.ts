/**
 * The flash bench's device: a measurement loop on holdfast's public API only, run as a child process
 * under the slow-fsync shim, so the bench sees every durable write it makes and nothing else.
 *
 * stdout, one JSON object per line (written synchronously):
 *   {"open":true}                                  after open()
 *   {"mark":label,"t","accepted","delivered","io","syncs"}   a measuring point: the process's own disk
 *                                                   counters and the shim's sync counts at that instant
 *   {"s":[t,state,connected,memory,inflight,cached,delivered,accepted]}   stats every HF_STATS_MS
 *   {"ev":"connect","t":…}                         each (re)connection
 *   {"done":true}                                  closed
 * Times are epoch milliseconds with sub-millisecond precision (performance.timeOrigin + performance.now()),
 * comparable with the bench's own clock.
 *
 * HF_SCRIPT=healthy runs on its own: a warm-up, then HF_COUNT readings at HF_RATE/s until delivered
 * (marks rate-start, rate-end), then the closed loop for HF_WINDOW_S s (marks sat-start, sat-end).
 * The closed loop keeps at most HF_OUTSTANDING readings accepted but not yet delivered and publishes
 * more as deliveries make room, so the offered rate settles at the highest rate the library sustains.
 *
 * HF_SCRIPT=outage publishes at HF_RATE/s and follows the bench, which drives the link: SIGUSR1 prints
 * a mark, SIGUSR2 toggles publishing and prints a mark, SIGTERM closes without draining.
 *
 * Environment: HF_BROKER, HF_CLIENT_ID, HF_CACHE_DIR (required); HF_DURABILITY (spill), HF_BULK (0),
 * HF_RATE (100), HF_COUNT (1000), HF_WINDOW_S (5), HF_OUTSTANDING (200), HF_STATS_MS (50), HF_TIMEOUT_MS (1000).
 */
import { open, type ClientState } from 'holdfast';
import { readSyncCounts, writeEventLine } from '@holdfast/testkit';
import { readProcIo } from '../power-cut/proc-io.js';

const env = process.env;
const say = writeEventLine;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const now = (): number => performance.timeOrigin + performance.now();

const clientId = env.HF_CLIENT_ID!;
const rate = Number(env.HF_RATE ?? 100);
const topic = `sensors/${clientId}`;
let n = 0;

// Installed before open(): the bench may signal as soon as it reads the open line.
let onSignal: (signal: NodeJS.Signals) => void = () => {};
for (const signal of ['SIGUSR1', 'SIGUSR2', 'SIGTERM'] as const) process.on(signal, () => onSignal(signal));

const client = await open({
  broker: env.HF_BROKER!,
  clientId,
  cacheDir: env.HF_CACHE_DIR!,
  durability: env.HF_DURABILITY === 'journal' ? 'journal' : 'spill',
  bulk: env.HF_BULK === '1' ? {} : false,
  timeoutMs: Number(env.HF_TIMEOUT_MS ?? 1000),
  session: { clean: false },
  reconnect: { minMs: 100, maxMs: 500 },
  keepaliveSec: 5,
  connectTimeoutMs: 2000,
});
say({ open: true });
client.on('connect', () => say({ ev: 'connect', t: now() }));

function mark(label: string): void {
  const s = client.stats();
  say({ mark: label, t: now(), accepted: s.accepted, delivered: s.delivered, spilled: s.spilled, io: readProcIo('self'), syncs: readSyncCounts() });
}

function publishOne(): void {
  n++;
  client.publish(topic, JSON.stringify({ device: clientId, n, v: Math.random() }));
}

/** Every state index in the stats lines (the compiler keeps this list whole). */
const states = ['direct', 'caching', 'draining', 'closed', 'restarting', 'failed'] as const satisfies readonly ClientState[];
const statsTimer = setInterval(() => {
  const s = client.stats();
  say({ s: [now(), states.indexOf(s.state), s.connected ? 1 : 0, s.memoryQueued, s.inflight, s.cached.messages, s.delivered, s.accepted] });
}, Number(env.HF_STATS_MS ?? 50));

/** `count` readings at `rate`/s, paced by elapsed time so a late timer does not lower the rate. */
async function paced(count: number): Promise<void> {
  const started = performance.now();
  for (let done = 0; done < count; ) {
    const due = Math.min(count, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    for (; done < due; done++) publishOne();
    await sleep(2);
  }
}

/** Publishes whenever fewer than `outstanding` readings wait for delivery, for `seconds`. */
async function closedLoop(seconds: number, outstanding: number): Promise<void> {
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const s = client.stats();
    for (let room = outstanding - (s.accepted - s.delivered); room > 0; room--) publishOne();
    await sleep(1);
  }
}

async function finish(drain: boolean): Promise<void> {
  if (drain) await client.drained();
  clearInterval(statsTimer);
  await client.close();
  say({ done: true });
  process.exit(0);
}

if (env.HF_SCRIPT === 'healthy') {
  const windowS = Number(env.HF_WINDOW_S ?? 5);
  const outstanding = Number(env.HF_OUTSTANDING ?? 200);
  // Warm-up: the first commits, the JIT, the connection's first exchanges.
  await paced(Math.max(10, rate / 5));
  await client.drained();
  mark('rate-start');
  await paced(Number(env.HF_COUNT ?? 1000));
  await client.drained();
  mark('rate-end');
  await closedLoop(Math.min(1, windowS / 2), outstanding);
  mark('sat-start');
  await closedLoop(windowS, outstanding);
  mark('sat-end');
  // What the closed loop left outstanding is not measured: close() keeps it (spilled or journaled).
  await finish(false);
} else {
  let publishing = true;
  let marks = 0;
  const started = performance.now();
  let published = 0;
  let pausedAt = 0;
  const tick = setInterval(() => {
    if (!publishing) return;
    const due = Math.floor(((performance.now() - started - pausedAt) / 1000) * rate) + 1;
    for (; published < due; published++) publishOne();
  }, 5);
  let pauseStarted = 0;
  onSignal = (signal) => {
    if (signal === 'SIGTERM') {
      clearInterval(tick);
      void finish(false);
      return;
    }
    if (signal === 'SIGUSR2') {
      publishing = !publishing;
      // Resuming continues the schedule where it stopped, not with a burst for the paused time.
      if (publishing) pausedAt += performance.now() - pauseStarted;
      else pauseStarted = performance.now();
    }
    mark(`${++marks}`);
  };
}
