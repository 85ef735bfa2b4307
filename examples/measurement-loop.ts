/**
 * The design card's measurement loop: read a sensor on a fixed period and hand each reading to
 * holdfast. publish() is synchronous and never blocks on the network; outages, spills and drains
 * happen in holdfast's worker thread.
 *
 *   HOLDFAST_BROKER=mqtt://broker:1883 node --import tsx examples/measurement-loop.ts
 *
 * Optional: HOLDFAST_CLIENT_ID, HOLDFAST_CACHE_DIR, LOOP_PERIOD_MS (100), LOOP_COUNT (unlimited).
 * Ctrl-C (SIGINT) or SIGTERM closes gracefully: pending readings are spilled to the cache and sent
 * on the next start.
 */
import { open } from 'holdfast';

const broker = process.env.HOLDFAST_BROKER ?? 'mqtt://127.0.0.1:1883';
const clientId = process.env.HOLDFAST_CLIENT_ID ?? 'measurement-loop';
const periodMs = Number(process.env.LOOP_PERIOD_MS ?? 100);
const count = process.env.LOOP_COUNT ? Number(process.env.LOOP_COUNT) : Infinity;

// Listen for SIGINT/SIGTERM before anything else: systemd may stop the service while it is starting.
const stopRequested = new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
});

const client = await open({ broker, clientId, cacheDir: process.env.HOLDFAST_CACHE_DIR ?? './holdfast-cache' });
// Also fired when only the offline flag changes (the broker out of reach), with its cause.
client.on('state', (state, { offline, offlineCause }) => console.log(JSON.stringify({ msg: 'state', state, offline, offlineCause })));
console.log(JSON.stringify({ msg: 'started', clientId, state: client.state }));

/** Stand-in for a real sensor read: a slow drift plus noise. */
function readTemperature(t: number): number {
  return 21 + 2 * Math.sin(t / 60_000) + (Math.random() - 0.5) * 0.2;
}

let taken = 0;
const timer = setInterval(() => {
  const now = Date.now();
  client.publish(`sensors/${clientId}/temperature`, JSON.stringify({ device: clientId, t: now, celsius: readTemperature(now) }));
  if (++taken >= count) void stop();
}, periodMs);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  if (Number.isFinite(count)) await client.drained();
  const { accepted, delivered, cached } = client.stats();
  await client.close();
  console.log(JSON.stringify({ msg: 'stopped', accepted, delivered, cached: cached.messages }));
}
void stopRequested.then(stop);
