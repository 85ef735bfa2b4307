/**
 * spill: the time to spill 100,000 pending messages to LMDB (one transaction), and the process's RSS
 * (app thread + worker + LMDB's mapped pages) while the cache holds 1,000,000 messages.
 *
 *   pnpm bench spill [--json] [--quick] [--pending 100000] [--cached 1000000]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { open, type HoldfastClient } from 'holdfast';
import { startBroker, startLinkProxy } from '@holdfast/testkit';
import { describeMachine, fmt, note, parseBenchArgs, report, round, tempDir, until } from './lib/common.js';

const args = parseBenchArgs(['pending', 'cached']);
const pending = args.numbers.pending ?? (args.quick ? 20_000 : 100_000);
const cachedTarget = args.numbers.cached ?? (args.quick ? 100_000 : 1_000_000);

const rssChild = fileURLToPath(new URL('./lib/rss-child.mjs', import.meta.url));
interface Memory {
  rssMb: number;
  anonMb: number;
  fileMb: number;
}
interface RssResult {
  baseline: Memory;
  cached: Memory;
  peakMb: number;
  cachedBytes: number;
}
const mb = (bytes: number): number => bytes / (1024 * 1024);

function reading(n: number): string {
  return JSON.stringify({ device: 'device-1', n, t: 1_700_000_000_000 + n, celsius: 21.5 });
}

/** A client whose broker is unreachable (the proxy refuses), so everything it accepts must be cached. */
async function offlineClient(name: string, proxyUrl: string, dir: string, highWater: number): Promise<HoldfastClient> {
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
await link.refuse(true);
const spillDir = tempDir('spill');
const rssDir = tempDir('rss');
try {
  // 1. Spill: everything is queued in the worker's memory, then flush() (offline) spills it at once.
  const spiller = await offlineClient('spill', link.url, spillDir.path, pending + 1);
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
  await spiller.flush();
  const spillSeconds = (performance.now() - t0) / 1000;
  await until(() => spiller.stats().cached.messages === pending, 120_000, 'the cache to count every message');
  note(`spill: ${fmt(spilledMessages)} messages in ${(spillSeconds * 1000).toFixed(0)} ms; counted after ${(performance.now() - t0).toFixed(0)} ms`);
  await spiller.close();

  // 2. RSS while the cache holds `cachedTarget` messages: measured in a plain-node child process.
  const child = spawnSync(process.execPath, [rssChild, link.url, rssDir.path, String(cachedTarget)], { encoding: 'utf8', timeout: 540_000 });
  if (child.status !== 0) throw new Error(`RSS child failed (${child.status ?? child.signal}): ${child.stderr}`);
  const rss = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as RssResult;
  const rssMb = rss.cached.rssMb;

  report(
    args,
    {
      bench: 'spill',
      pending,
      spillSeconds: round(spillSeconds, 3),
      cached: cachedTarget,
      rssMb: round(rssMb, 1),
      anonMb: round(rss.cached.anonMb, 1),
      lmdbMappedMb: round(rss.cached.fileMb, 1),
      peakRssMb: round(rss.peakMb, 1),
      baselineRssMb: round(rss.baseline.rssMb, 1),
    },
    [
      [`spill ${fmt(pending)} pending (one txn)`, `${(spillSeconds * 1000).toFixed(0)} ms${pending === 100_000 ? ' (target ≤ 500 ms)' : ''}`],
      [`RSS with ${fmt(cachedTarget)} cached`, `${rssMb.toFixed(1)} MB${cachedTarget === 1_000_000 ? ' (target ≤ 100 MB)' : ''}`],
      ['  of which anonymous (heaps, native)', `${rss.cached.anonMb.toFixed(1)} MB`],
      ['  of which file-backed (LMDB map, page cache)', `${rss.cached.fileMb.toFixed(1)} MB`],
      ['RSS peak while caching', `${rss.peakMb.toFixed(1)} MB`],
      ['RSS before the client opened', `${rss.baseline.rssMb.toFixed(1)} MB`],
      ['cached payload + topic bytes', `${mb(rss.cachedBytes).toFixed(1)} MB`],
    ],
    describeMachine(broker.kind),
  );
} finally {
  await link.close();
  await broker.close();
  spillDir.remove();
  rssDir.remove();
}
