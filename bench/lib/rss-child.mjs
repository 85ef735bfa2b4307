/**
 * The RSS half of the spill benchmark, in plain-node processes (no tsx, no earlier benchmark in the
 * same heap) so the figures are holdfast's own footprint. Prints one JSON line.
 *
 *   node rss-child.mjs fill <brokerUrl> <cacheDir> <count>
 *     An offline client caches `count` readings as fast as it can, in chunks of the default high-water
 *     mark, as a long outage spills them. Reports the peak RSS and the RSS just after.
 *   node rss-child.mjs hold <brokerUrl> <cacheDir> <seconds>
 *     A device whose cache already holds them (a fresh process, as after a day offline at 10/s) goes on
 *     publishing 10 readings/s, each second spilled with flush(), for `seconds`; then reports RSS.
 *
 * RSS is split into anonymous memory (heaps, native) and file-backed pages (the node binary, shared
 * libraries and LMDB's mapped chunks).
 */
import { readFileSync } from 'node:fs';
import { open } from 'holdfast';

const [mode, brokerUrl, cacheDir, numberText] = process.argv.slice(2);
// The default high-water mark: a long outage spills every 10,000 readings, not all at once.
const CHUNK = 10_000;
const MB = 1024 * 1024;
const TOPIC = 'sensors/device-1/temperature';
// One payload string for every reading: the figure is holdfast's footprint, so the app thread should not
// also be building a million JSON strings (publish() copies the bytes into the record either way).
const reading = JSON.stringify({ device: 'device-1', n: 1, t: 1_700_000_000_000, celsius: 21.5 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

const baseline = memory();
const client = await open({
  broker: brokerUrl,
  clientId: 'bench-rss',
  cacheDir,
  session: { clean: true },
  timeoutMs: 3_600_000,
  maxCache: { messages: 10_000_000, bytes: 2 ** 34 },
});
let result;
if (mode === 'fill') {
  const count = Number(numberText);
  let peakMb = 0;
  const sampler = setInterval(() => (peakMb = Math.max(peakMb, process.memoryUsage().rss / MB)), 50);
  for (let done = 0; done < count; done += CHUNK) {
    for (let n = done + 1; n <= Math.min(count, done + CHUNK); n++) client.publish(TOPIC, reading);
    await client.flush();
  }
  while (client.stats().cached.messages < count) await sleep(20);
  clearInterval(sampler);
  const filled = memory();
  result = { baseline, filled, peakMb: Math.max(peakMb, filled.rssMb) };
} else {
  const opened = memory();
  const until = Date.now() + Number(numberText) * 1000;
  while (Date.now() < until) {
    for (let i = 0; i < 10; i++) {
      client.publish(TOPIC, reading);
      await sleep(100);
    }
    await client.flush();
  }
  result = { baseline, opened, held: memory(), cached: client.stats().cached };
}
await client.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
