/**
 * The chaos campaign's device: a fixed-rate measurement loop on holdfast's public API only, run as a
 * child process so the campaign can SIGKILL it and start it again on the same cache. It speaks the
 * device protocol of @holdfast/testkit's chaos runner (packages/testkit/README.md, "Chaos campaign").
 *
 * stdout, one JSON object per line, written synchronously so every line survives a SIGKILL:
 *   {"open":true,"hooks":bool,"cached":n}   open() resolved; hooks: the worker fault hook exists
 *   {"openFailed":"CODE: message"}           open() rejected (the process then exits 3)
 *   {"openRetry":"message"}                  open() found the disk too full for the cache: tried again in 500 ms
 *   {"try":42}                               reading 42 is about to go to publish(): a SIGKILL can fall between
 *                                            publish() accepting it and the line below, so the next life starts after it
 *   {"n":42,"seq":…}                         reading 42 was accepted by publish() (printed before the next)
 *   {"n":43,"seq":…,"poison":"refused"}      the same, for a reading sent to a poison topic on command
 *   {"s":[state,connected,memory,inflight,cached,rssMB,delivered]}   stats every HF_STATS_MS
 *   {"ev":"dead-letter","data":{…}}          every client event
 *   {"ack":7,"ok":true}                      a command from the control file was carried out
 *   {"drained":true,"deadLetters":[seq,…]}   after SIGUSR2: publishing stopped and drained() resolved
 *   {"inspected":true,"cached":[seq,…],"deadLetters":[seq,…],"intakeSegments":n}   with HF_INSPECT=1:
 *                                            what the cache holds (read-only, no connection); then exit 0
 *
 * Commands: JSON lines appended to HF_CONTROL: {"id":7,"do":"inject","kind":"throw"|"exit"|"oom"} and
 * {"id":8,"do":"poison","topic":"refused"|"forbidden"}.
 *
 * Environment: HF_BROKER, HF_CLIENT_ID, HF_CACHE_DIR, HF_CONTROL (required); HF_DURABILITY (spill),
 * HF_RATE (50/s), HF_N_START (1), HF_TIMEOUT_MS (1000), HF_HIGH_WATER (10000), HF_MAX_CACHE_BYTES,
 * HF_STATS_MS (200). SIGUSR2 stops publishing, waits for drained(), lists the dead letters, closes, exits 0.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { writeEventLine } from '@holdfast/testkit';
import { ErrorCodes, exportCache, exportDeadLetters, inspectCache, open, type HoldfastClient, type ClientState } from 'holdfast';

const env = process.env;
const say = writeEventLine;

const clientId = env.HF_CLIENT_ID!;
const rate = Number(env.HF_RATE ?? 50);
let n = Number(env.HF_N_START ?? 1);
const INJECT = Symbol.for('holdfast.test.injectWorkerFault');

// Installed before open(): the campaign may signal as soon as it reads the open line.
let stopping = false;
let onDrain = (): void => {};
process.on('SIGUSR2', () => onDrain());

// After a wedge: list what the cache still holds, without connecting, and exit.
if (env.HF_INSPECT === '1') {
  const cached: number[] = [];
  for await (const m of exportCache(env.HF_CACHE_DIR!)) cached.push(m.seq);
  const deadLetters: number[] = [];
  for await (const d of exportDeadLetters(env.HF_CACHE_DIR!)) deadLetters.push(d.seq);
  say({ inspected: true, cached, deadLetters, intakeSegments: (await inspectCache(env.HF_CACHE_DIR!)).intakeLog.segments });
  process.exit(0);
}

const maxCacheBytes = env.HF_MAX_CACHE_BYTES === undefined ? undefined : Number(env.HF_MAX_CACHE_BYTES);
const openClient = (): Promise<HoldfastClient> =>
  open({
    broker: env.HF_BROKER!,
    clientId,
    cacheDir: env.HF_CACHE_DIR!,
    durability: env.HF_DURABILITY === 'journal' ? 'journal' : 'spill',
    timeoutMs: Number(env.HF_TIMEOUT_MS ?? 1000),
    highWater: { messages: Number(env.HF_HIGH_WATER ?? 10_000) },
    ...(maxCacheBytes === undefined ? {} : { maxCache: { bytes: maxCacheBytes } }),
    session: { clean: false },
    reconnect: { minMs: 100, maxMs: 1000 },
    keepaliveSec: 5,
    connectTimeoutMs: 2000,
  });
/** A disk too full to open the cache on is retried, as an application would (the fault frees it). */
const isDiskFull = (err: unknown): boolean => (err as { code?: string }).code === ErrorCodes.CACHE_UNAVAILABLE && /disk is full|no space left/i.test((err as Error).message);

let client: HoldfastClient;
for (let tries = 1; ; tries++) {
  try {
    client = await openClient();
    break;
  } catch (err) {
    if (isDiskFull(err) && tries < 40) {
      say({ openRetry: (err as Error).message });
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    const e = err as { code?: string; message?: string };
    say({ openFailed: `${e.code ?? 'ERROR'}: ${e.message ?? String(err)}` });
    process.exit(3);
  }
}

const hooks = typeof (client as unknown as Record<symbol, unknown>)[INJECT] === 'function';
say({ open: true, hooks, cached: client.stats().cached.messages });

for (const name of ['state', 'spill', 'drain-start', 'drain-end', 'connect', 'disconnect', 'connection-error', 'evict', 'dead-letter', 'quarantine', 'cache-recovered', 'intake-replayed', 'worker-restart', 'error']) {
  client.on(name, (data: unknown) => say({ ev: name, data: data instanceof Error ? `${(data as { code?: string }).code ?? data.name}: ${data.message}` : data }));
}

/** Every state index in the stats lines (the compiler keeps this list whole). */
const states = ['direct', 'caching', 'draining', 'closed', 'restarting', 'failed'] as const satisfies readonly ClientState[];
const statsTimer = setInterval(() => {
  const s = client.stats();
  say({ s: [states.indexOf(s.state), s.connected ? 1 : 0, s.memoryQueued, s.inflight, s.cached.messages, Math.round(process.memoryUsage.rss() / 2 ** 20), s.delivered] });
}, Number(env.HF_STATS_MS ?? 200));

/** Journal mode refuses a reading its intake log cannot take (a full disk): not accepted, so n is kept. */
function publish(topic: string, poison?: string): void {
  let seq: number;
  say({ try: n });
  try {
    seq = client.publish(topic, JSON.stringify({ device: clientId, n, v: Math.random() }));
  } catch (err) {
    if ((err as { code?: string }).code !== ErrorCodes.CACHE_WRITE_FAILED) throw err;
    return;
  }
  say(poison === undefined ? { n, seq } : { n, seq, poison });
  n++;
}

// Paced by elapsed monotonic time (a faked wall clock must not change the rate).
const started = performance.now();
let published = 0;
const tick = setInterval(() => {
  const due = Math.floor(((performance.now() - started) / 1000) * rate) + 1;
  while (published < due && !stopping) {
    publish(`chaos/${clientId}`);
    published++;
  }
}, 5);

/** Commands appended to the control file since this life started. */
const control = openSync(env.HF_CONTROL!, 'r');
let offset = statSync(env.HF_CONTROL!).size;
let partial = '';
const controlTimer = setInterval(() => {
  const size = statSync(env.HF_CONTROL!).size;
  if (size <= offset) return;
  const buf = Buffer.alloc(size - offset);
  offset += readSync(control, buf, 0, buf.length, offset);
  const lines = (partial + buf.toString('utf8')).split('\n');
  partial = lines.pop() ?? '';
  for (const line of lines) if (line.trim() !== '') command(JSON.parse(line) as { id: number; do: string; kind?: string; topic?: string });
}, 20);

function command(cmd: { id: number; do: string; kind?: string; topic?: string }): void {
  if (cmd.do === 'poison' && !stopping) {
    publish(`chaos-${cmd.topic}/${clientId}`, cmd.topic);
    say({ ack: cmd.id, ok: true });
  } else if (cmd.do === 'inject' && hooks) {
    say({ ack: cmd.id, ok: true });
    (client as unknown as Record<symbol, (kind: string) => void>)[INJECT]!(cmd.kind!);
  } else {
    say({ ack: cmd.id, ok: false });
  }
}

onDrain = () => {
  if (stopping) return;
  stopping = true;
  clearInterval(tick);
  void (async () => {
    await client.drained();
    const letters = await client.deadLetters();
    say({ drained: true, deadLetters: letters.map((l) => l.seq) });
    clearInterval(statsTimer);
    clearInterval(controlTimer);
    closeSync(control);
    await client.close();
    say({ closed: true });
    process.exit(0);
  })();
};
