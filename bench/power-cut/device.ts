/**
 * The power-cut bench's device: a fixed-rate measurement loop on holdfast's public API, run as a child
 * process so the bench can SIGKILL it and start it again on the same cache.
 *
 * stdout, one JSON object per line, written synchronously so the lines survive a SIGKILL:
 *   {"open":true,"state":…,"cached":…}    after open()
 *   {"n":42}                               reading 42 was accepted by publish()
 *   {"s":[t,state,connected,memory,inflight,cached,delivered,spilled]}  stats every HF_STATS_MS
 *   {"ev":"spill","t":…,"data":{…}}       every client event (state, spill, drain, connect, …), for the trace
 *   {"d":40}                               flush() confirmed every reading up to 40 (HF_FLUSH_MS set)
 *   {"drained":true,"io":{…}}              after SIGUSR2: publishing stopped, everything delivered, closed
 *
 * Environment: HF_BROKER, HF_CLIENT_ID, HF_CACHE_DIR (required); HF_RATE (100/s), HF_N_START (1),
 * HF_DURABILITY (spill), HF_TIMEOUT_MS (1000), HF_STATS_MS (100), HF_FLUSH_MS (unset: flush() is never
 * called; 0: one flush() after another while readings keep coming; N: one every N ms). A flush() that
 * resolved covers every reading accepted before it was called: durable in journal mode, delivered or
 * spilled in spill mode (where flush() while offline spills at once, so calling it changes what is
 * measured).
 * SIGUSR2 stops publishing, waits for drained(), closes and exits 0. SIGTERM closes and exits 0.
 */
import { writeEventLine } from '@holdfast/testkit';
import { open, type ClientState } from 'holdfast';
import { readProcIo } from './proc-io.js';

const env = process.env;
const say = writeEventLine;

const clientId = env.HF_CLIENT_ID!;
const rate = Number(env.HF_RATE ?? 100);
const statsMs = Number(env.HF_STATS_MS ?? 100);
let n = Number(env.HF_N_START ?? 1);

// Installed before anything else: the bench may signal as soon as it reads the open line, and a
// signal without a listener would end the process instead.
let requested: 'drain' | 'close' | undefined;
let onRequest = (): void => {};
process.on('SIGUSR2', () => {
  requested ??= 'drain';
  onRequest();
});
process.on('SIGTERM', () => {
  requested ??= 'close';
  onRequest();
});

const client = await open({
  broker: env.HF_BROKER!,
  clientId,
  cacheDir: env.HF_CACHE_DIR!,
  durability: env.HF_DURABILITY === 'journal' ? 'journal' : 'spill',
  timeoutMs: Number(env.HF_TIMEOUT_MS ?? 1000),
  session: { clean: false },
  reconnect: { minMs: 100, maxMs: 1000 },
  keepaliveSec: 5,
  connectTimeoutMs: 2000,
});
say({ open: true, state: client.stats().state, cached: client.stats().cached.messages });

for (const name of ['state', 'spill', 'drain-start', 'drain-end', 'connect', 'disconnect', 'connection-error', 'evict', 'dead-letter', 'quarantine', 'cache-recovered', 'error']) {
  client.on(name, (data: unknown) => say({ ev: name, t: Date.now(), data: data instanceof Error ? `${data.name}: ${data.message}` : data }));
}

/** Every state index in the stats lines (the compiler keeps this list whole). */
const states = ['direct', 'caching', 'draining', 'closed', 'restarting', 'failed'] as const satisfies readonly ClientState[];
// Compact positional stats keep the pipe cheap at 10 lines/s per device.
const statsTimer = setInterval(() => {
  const s = client.stats();
  say({ s: [Date.now(), states.indexOf(s.state), s.connected ? 1 : 0, s.memoryQueued, s.inflight, s.cached.messages, s.delivered, s.spilled] });
}, statsMs);

// One flush() at a time, re-armed while readings keep coming: the bench learns which readings flush()
// confirmed before a kill, so a loss can be judged against what was promised.
const flushMs = env.HF_FLUSH_MS === undefined ? undefined : Number(env.HF_FLUSH_MS);
let stopping = false;
let flushing = false;
let lastFlushAt = -Infinity;
let confirmed = n - 1;
function confirmDurable(): void {
  if (flushMs === undefined || flushing || stopping || n - 1 <= confirmed || performance.now() - lastFlushAt < flushMs) return;
  flushing = true;
  lastFlushAt = performance.now();
  const upTo = n - 1;
  void client.flush().then(() => {
    flushing = false;
    confirmed = upTo;
    say({ d: upTo });
    confirmDurable();
  });
}

// Paced by elapsed time, not timer ticks, so the rate holds when the event loop is late.
const started = performance.now();
let published = 0;
const tick = setInterval(() => {
  const due = Math.floor(((performance.now() - started) / 1000) * rate) + 1;
  while (published < due && !stopping) {
    client.publish(`sensors/${clientId}`, JSON.stringify({ device: clientId, n, v: Math.random() }));
    say({ n });
    n++;
    published++;
  }
  confirmDurable();
}, 5);

async function stop(drain: boolean): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(tick);
  if (drain) await client.drained();
  clearInterval(statsTimer);
  await client.close();
  // The final disk-write count, after the last commit: the bench cannot read /proc once we are gone.
  say({ [drain ? 'drained' : 'closed']: true, io: readProcIo('self') });
  process.exit(0);
}
onRequest = () => void stop(requested === 'drain');
if (requested !== undefined) onRequest();
