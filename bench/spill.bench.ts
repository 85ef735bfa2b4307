/**
 * spill: the time to spill 100,000 pending messages to LMDB (one transaction), and the process's RSS
 * (app thread + worker + LMDB's mapped pages) while the cache holds 1,000,000 messages.
 *
 *   pnpm bench spill [--json] [--quick] [--pending 100000] [--cached 1000000]
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { open, type HoldfastClient } from 'holdfast';
import { startBroker, startLinkProxy } from '@holdfast/testkit';
import { describeMachine, fmt, note, parseBenchArgs, report, round, tempDir, until } from './lib/common.js';

const args = parseBenchArgs(['pending', 'cached']);
const pending = args.numbers.pending ?? (args.quick ? 20_000 : 100_000);
const cachedTarget = args.numbers.cached ?? (args.quick ? 100_000 : 1_000_000);
const CHUNK = 100_000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const mb = (bytes: number): number => bytes / (1024 * 1024);

function reading(n: number): string {
  return JSON.stringify({ device: 'device-1', n, t: 1_700_000_000_000 + n, celsius: 21.5 });
}

/** A client whose broker is unreachable (the proxy refuses), so everything it accepts must be cached. */
async function offlineClient(name: string, proxyUrl: string, dir: string, highWater: number): Promise<HoldfastClient> {
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

  // 2. RSS while the cache holds `cachedTarget` messages, spilled in chunks as a long outage would.
  gc();
  const rssBeforeMb = mb(process.memoryUsage().rss);
  const holder = await offlineClient('rss', link.url, rssDir.path, CHUNK + 1);
  let peakRssMb = 0;
  const sampler = setInterval(() => {
    peakRssMb = Math.max(peakRssMb, mb(process.memoryUsage().rss));
  }, 50);
  for (let done = 0; done < cachedTarget; done += CHUNK) {
    const end = Math.min(cachedTarget, done + CHUNK);
    for (let n = done + 1; n <= end; n++) holder.publish('sensors/device-1/temperature', reading(n));
    await holder.flush();
  }
  await until(() => holder.stats().cached.messages === cachedTarget, 60_000, 'the cache to count every message');
  gc();
  await new Promise((resolve) => setTimeout(resolve, 500));
  gc();
  const rssMb = mb(process.memoryUsage().rss);
  clearInterval(sampler);
  peakRssMb = Math.max(peakRssMb, rssMb);
  const cachedBytes = holder.stats().cached.bytes;
  await holder.close();

  report(
    args,
    {
      bench: 'spill',
      pending,
      spillSeconds: round(spillSeconds, 3),
      cached: cachedTarget,
      rssMb: round(rssMb, 1),
      peakRssMb: round(peakRssMb, 1),
      baselineRssMb: round(rssBeforeMb, 1),
    },
    [
      [`spill ${fmt(pending)} pending (one txn)`, `${(spillSeconds * 1000).toFixed(0)} ms${pending === 100_000 ? ' (target ≤ 500 ms)' : ''}`],
      [`RSS with ${fmt(cachedTarget)} cached`, `${rssMb.toFixed(1)} MB${cachedTarget === 1_000_000 ? ' (target ≤ 100 MB)' : ''}`],
      ['RSS peak while caching', `${peakRssMb.toFixed(1)} MB`],
      ['RSS before the client opened', `${rssBeforeMb.toFixed(1)} MB`],
      ['cached payload + topic bytes', `${mb(cachedBytes).toFixed(1)} MB`],
    ],
    describeMachine(broker.kind),
  );
} finally {
  await link.close();
  await broker.close();
  spillDir.remove();
  rssDir.remove();
}
