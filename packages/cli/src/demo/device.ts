/**
 * The demo's device: a simulated sensor in its own process, so the demo can cut its power (SIGKILL)
 * and start it again on the same cache. It runs in journal mode, so a reading is on disk (the intake log)
 * once publish() returns; it then says so on stdout, and that line is the demo's ground truth.
 * Before publishing it announces the number, so a restart never reuses one.
 *
 * Environment: DEMO_BROKER, DEMO_CLIENT_ID, DEMO_CACHE_DIR, DEMO_TOPIC, DEMO_N_START, DEMO_INTERVAL_MS,
 * DEMO_PROTOCOL (4 or 5). SIGUSR2: stop reading, wait until everything is delivered, close, exit.
 * SIGTERM: close (spilling what is pending) and exit.
 */
import { writeSync } from 'node:fs';
import { open } from 'holdfast';
import { SimulatedDevice } from '../simulator/device.js';

const env = process.env;
const say = (event: Record<string, unknown>): void => {
  writeSync(1, `${JSON.stringify(event)}\n`);
};

const clientId = env.DEMO_CLIENT_ID ?? 'demo-device';
const intervalMs = Number(env.DEMO_INTERVAL_MS ?? 50);
const topic = env.DEMO_TOPIC ?? `holdfast-demo/${clientId}/telemetry`;
let n = Number(env.DEMO_N_START ?? 1);

const client = await open({
  broker: env.DEMO_BROKER ?? 'mqtt://127.0.0.1:1883',
  clientId,
  cacheDir: env.DEMO_CACHE_DIR ?? './holdfast-demo-cache',
  durability: 'journal',
  protocolVersion: env.DEMO_PROTOCOL === '5' ? 5 : 4,
  timeoutMs: 1000,
  reconnect: { minMs: 200, maxMs: 1000 },
  keepaliveSec: 5,
  connectTimeoutMs: 2000,
});
say({ open: true, state: client.state, cached: client.stats().cached.messages });

const stats = setInterval(() => {
  const s = client.stats();
  say({ stats: { state: s.state, offline: s.offline, offlineCause: s.offlineCause, offlineForMs: s.offlineForMs, cached: s.cached.messages } });
}, 200);

let stopping = false;
const sensor = new SimulatedDevice(clientId, 'sensor');

async function measure(): Promise<void> {
  while (!stopping) {
    const next = performance.now() + intervalMs;
    say({ publishing: n });
    client.publish(topic, JSON.stringify({ device: clientId, n, ts: Date.now(), values: sensor.read(Date.now()).values }));
    say({ accepted: n });
    n++;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
  }
}

async function finish(drain: boolean): Promise<void> {
  if (stopping) return;
  stopping = true;
  await measuring;
  if (drain) {
    await client.drained();
    say({ drained: true });
  }
  clearInterval(stats);
  await client.close();
  say({ closed: true });
}

const measuring = measure();
process.on('SIGUSR2', () => void finish(true));
process.on('SIGTERM', () => void finish(false));
