/**
 * The RSS half of the spill benchmark, in its own plain-node process (no tsx, no earlier benchmark
 * in the same heap) so the figure is holdfast's own footprint. An offline client caches `count`
 * readings in chunks, as a long outage would; then RSS (split into anonymous memory and LMDB's
 * file-backed mapped pages) is printed as one JSON line.
 *
 *   node rss-child.mjs <brokerUrl> <cacheDir> <count>
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { open } from 'holdfast';

const [brokerUrl, cacheDir, countText] = process.argv.slice(2);
const count = Number(countText);
// The default high-water mark: a long outage spills every 10,000 readings, not all at once.
const CHUNK = 10_000;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const MB = 1024 * 1024;

/** VmRSS, RssAnon and RssFile from /proc (Linux); RSS alone elsewhere. */
function memory() {
  const out = { rssMb: process.memoryUsage().rss / MB, anonMb: NaN, fileMb: NaN };
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    out.anonMb = kb('RssAnon') / 1024;
    out.fileMb = (kb('RssFile') + kb('RssShmem')) / 1024;
  } catch {
    // Not Linux.
  }
  return out;
}

gc();
const baseline = memory();
const client = await open({
  broker: brokerUrl,
  clientId: 'bench-rss',
  cacheDir,
  session: { clean: true },
  timeoutMs: 3_600_000,
  maxCache: { messages: count * 2, bytes: 2 ** 34 },
});
let peakMb = 0;
const sampler = setInterval(() => (peakMb = Math.max(peakMb, process.memoryUsage().rss / MB)), 50);
for (let done = 0; done < count; done += CHUNK) {
  const end = Math.min(count, done + CHUNK);
  for (let n = done + 1; n <= end; n++) {
    client.publish('sensors/device-1/temperature', JSON.stringify({ device: 'device-1', n, t: 1_700_000_000_000 + n, celsius: 21.5 }));
  }
  await client.flush();
}
while (client.stats().cached.messages < count) await new Promise((resolve) => setTimeout(resolve, 20));
gc();
await new Promise((resolve) => setTimeout(resolve, 500));
gc();
const cached = memory();
clearInterval(sampler);
const cachedBytes = client.stats().cached.bytes;
await client.close();
process.stdout.write(`${JSON.stringify({ baseline, cached, peakMb: Math.max(peakMb, cached.rssMb), cachedBytes })}\n`);
