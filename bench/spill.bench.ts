/**
 * spill: the time to spill 100,000 pending messages to LMDB (one transaction), and the process's RSS
 * (app thread + worker + LMDB's mapped pages) while its cache holds 1,000,000 messages: a device
 * process that opened that cache publishes 10 readings/s for --hold seconds, spilling each second.
 * The peak RSS of the process that filled the cache at full speed is reported next to it.
 *
 *   pnpm bench spill [--json] [--quick] [--pending 100000] [--cached 1000000] [--hold 20]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { open, type HoldfastClient } from 'holdfast';
import { startBroker, startLinkProxy } from '@holdfast/testkit';
import { describeMachine, fmt, note, parseBenchArgs, report, round, tempDir, until } from './lib/common.js';

const args = parseBenchArgs(['pending', 'cached', 'hold']);
const pending = args.numbers.pending ?? (args.quick ? 20_000 : 100_000);
const cachedTarget = args.numbers.cached ?? (args.quick ? 100_000 : 1_000_000);
const holdSeconds = args.numbers.hold ?? (args.quick ? 3 : 20);

const rssChild = fileURLToPath(new URL('./lib/rss-child.mjs', import.meta.url));
interface Memory {
  rssMb: number;
  anonMb: number;
  fileMb: number;
}
interface FillResult {
  baseline: Memory;
  filled: Memory;
  peakMb: number;
}
interface HoldResult {
  baseline: Memory;
  held: Memory;
  cached: { messages: number; bytes: number };
}

/** Runs bench/lib/rss-child.mjs in a plain node process and returns its JSON line. */
function rssChildRun<T>(mode: 'fill' | 'hold', url: string, dir: string, n: number): T {
  const child = spawnSync(process.execPath, [rssChild, mode, url, dir, String(n)], { encoding: 'utf8', timeout: 540_000 });
  if (child.status !== 0) throw new Error(`RSS child (${mode}) failed (${child.status ?? child.signal}): ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as T;
}
const mb = (bytes: number): number => bytes / (1024 * 1024);

function reading(n: number): string {
  return JSON.stringify({ device: 'device-1', n, t: 1_700_000_000_000 + n, celsius: 21.5 });
}

/** A client with room for everything in memory, so only trouble makes it write the cache. */
async function benchClient(name: string, proxyUrl: string, dir: string, highWater: number): Promise<HoldfastClient> {
  // maxCache leaves room, so nothing is evicted.
  return open({
    broker: proxyUrl,
    clientId: `bench-${name}`,
    cacheDir: dir,
    session: { clean: true },
    timeoutMs: 3_600_000,
    highWater: { messages: highWater, bytes: 2 ** 31 },
    maxCache: { messages: Math.max(pending, cachedTarget) * 2, bytes: 2 ** 34 },
  });
}

const broker = await startBroker({ log: note });
const link = await startLinkProxy({ targetPort: broker.port });
const spillDir = tempDir('spill');
const rssDir = tempDir('rss');
try {
  // 1. Spill: connected through a stalled link (nothing is acknowledged, nothing is lost), everything
  // is queued in the worker's memory; then the link resets, and the whole pending stream goes to the
  // cache in one transaction. flush() resolves once it is committed.
  const spiller = await benchClient('spill', link.url, spillDir.path, pending + 1);
  await until(() => spiller.stats().connected, 10_000, 'the spill client to connect');
  link.stall(true);
  let spilledMessages = 0;
  spiller.on('spill', (data: { messages: number }) => {
    spilledMessages += data.messages;
  });
  for (let n = 1; n <= pending; n++) spiller.publish('sensors/device-1/temperature', reading(n));
  await until(() => {
    const s = spiller.stats();
    return s.memoryQueued + s.inflight >= pending;
  }, 60_000, 'the worker to queue every message');
  const t0 = performance.now();
  await link.refuse(true);
  link.stall(false);
  await spiller.flush();
  const spillSeconds = (performance.now() - t0) / 1000;
  await until(() => spiller.stats().cached.messages === pending, 120_000, 'the cache to count every message');
  note(`spill: ${fmt(spilledMessages)} messages in ${(spillSeconds * 1000).toFixed(0)} ms; counted after ${(performance.now() - t0).toFixed(0)} ms`);
  await spiller.close();

  // 2. RSS: one process fills the cache at full speed; then a device process holding that cache
  // publishes 10/s (spilling each second) and is measured. Both are plain-node child processes.
  const fill = rssChildRun<FillResult>('fill', link.url, rssDir.path, cachedTarget);
  const hold = rssChildRun<HoldResult>('hold', link.url, rssDir.path, holdSeconds);
  const rssMb = hold.held.rssMb;

  report(
    args,
    {
      bench: 'spill',
      pending,
      spillSeconds: round(spillSeconds, 3),
      cached: cachedTarget,
      rssMb: round(rssMb, 1),
      anonMb: round(hold.held.anonMb, 1),
      fileBackedMb: round(hold.held.fileMb, 1),
      holdSeconds,
      fillPeakRssMb: round(fill.peakMb, 1),
      filledRssMb: round(fill.filled.rssMb, 1),
      baselineRssMb: round(hold.baseline.rssMb, 1),
    },
    [
      [`spill ${fmt(pending)} pending (one txn)`, `${(spillSeconds * 1000).toFixed(0)} ms${pending === 100_000 ? ' (target ≤ 500 ms)' : ''}`],
      [`RSS of a device holding ${fmt(hold.cached.messages)} cached`, `${rssMb.toFixed(1)} MB${cachedTarget === 1_000_000 ? ' (target ≤ 100 MB)' : ''}, publishing 10/s for ${holdSeconds} s`],
      ['  of which anonymous (heaps, native)', `${hold.held.anonMb.toFixed(1)} MB`],
      ['  of which file-backed (node binary, libraries, LMDB chunks)', `${hold.held.fileMb.toFixed(1)} MB`],
      ['  RSS of that process before open()', `${hold.baseline.rssMb.toFixed(1)} MB`],
      [`RSS peak while filling ${fmt(cachedTarget)} at full speed`, `${fill.peakMb.toFixed(1)} MB`],
      ['  RSS just after filling', `${fill.filled.rssMb.toFixed(1)} MB`],
      ['cached payload + topic bytes', `${mb(hold.cached.bytes).toFixed(1)} MB`],
    ],
    describeMachine(broker.kind),
  );
} finally {
  await link.close();
  await broker.close();
  spillDir.remove();
  rssDir.remove();
}
