/**
 * publish: what publish() costs the app thread while the worker is busy sending (and spilling) the
 * stream, next to MQTT.js's own client.publish() (QoS 2, not awaited) on the same Mosquitto.
 *
 * calls/s comes from untimed tight loops (no timer inside the loop). p50/p99/max come from a second
 * pass timing every call with process.hrtime.bigint(), so they include the timer's own cost (~30-60 ns)
 * and the amortised postMessage of a full batch, which lands on the call that fills it.
 *
 *   pnpm bench publish [--json] [--quick] [--calls N]
 */
import mqtt from 'mqtt';
import { open } from 'holdfast';
import { startBroker } from '@holdfast/testkit';
import { describeMachine, fmt, note, parseBenchArgs, quantile, report, round, sleep, tempDir, until } from './lib/common.js';

const args = parseBenchArgs(['calls']);
const calls = args.numbers.calls ?? (args.quick ? 200_000 : 2_000_000);
/** Calls per untimed chunk; between chunks the loop yields so the worker gets the batches. */
const CHUNK = 20_000;
/** MQTT.js keeps every unacknowledged QoS 2 packet in memory under a 16-bit packet id: stay below. */
const MQTTJS_CHUNK = 10_000;
const topic = 'bench/publish/device-1/temperature';
const payload = JSON.stringify({ device: 'device-1', t: 1_700_000_000_000, celsius: 21.5 });

const broker = await startBroker({ log: note });
const dir = tempDir('publish');
try {
  const client = await open({
    broker: broker.url,
    clientId: 'bench-publish-holdfast',
    cacheDir: dir.path,
    session: { clean: true },
    maxCache: { messages: 10_000_000, bytes: 2 ** 34 },
    // Millions of calls in seconds, far faster than any disk takes them: they wait in the worker's
    // heap, which the memory queue's size bounds (max(256 MB, 128 MB + 4 × highWater.bytes)).
    highWater: { bytes: 256 * 2 ** 20 },
    // ...and close() spills them all before it returns.
    closeTimeoutMs: 120_000,
  });

  /** Untimed loop of `n` calls; returns the elapsed ns. */
  function holdfastLoop(n: number): number {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) client.publish(topic, payload);
    return Number(process.hrtime.bigint() - t0);
  }

  // Warm up the JIT and get the worker busy before anything counts.
  holdfastLoop(CHUNK);
  await sleep(20);

  let holdfastNs = 0;
  for (let done = 0; done < calls; done += CHUNK) {
    holdfastNs += holdfastLoop(Math.min(CHUNK, calls - done));
    await new Promise((resolve) => setImmediate(resolve));
  }
  const callsPerSecond = (calls * 1e9) / holdfastNs;

  // The same with a Buffer payload (copied into the batch, since the caller may reuse it).
  const bytesPayload = Buffer.from(payload);
  const bytesCalls = Math.min(calls, args.quick ? 100_000 : 500_000);
  let bytesNs = 0;
  for (let done = 0; done < bytesCalls; done += CHUNK) {
    const n = Math.min(CHUNK, bytesCalls - done);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) client.publish(topic, bytesPayload);
    bytesNs += Number(process.hrtime.bigint() - t0);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const bytesCallsPerSecond = (bytesCalls * 1e9) / bytesNs;
  const busy = client.stats();
  note(`holdfast: ${fmt(callsPerSecond)} calls/s; worker busy: state ${busy.state}, ${fmt(busy.memoryQueued + busy.cached.messages)} pending`);

  // Per-call distribution: every call timed on its own.
  const sampleCount = Math.min(calls, args.quick ? 100_000 : 500_000);
  const perCall = new Float64Array(sampleCount);
  for (let done = 0; done < sampleCount; ) {
    const end = Math.min(sampleCount, done + CHUNK);
    for (; done < end; done++) {
      const t0 = process.hrtime.bigint();
      client.publish(topic, payload);
      perCall[done] = Number(process.hrtime.bigint() - t0);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  perCall.sort();
  const p50Us = quantile(perCall, 0.5) / 1000;
  const p99Us = quantile(perCall, 0.99) / 1000;
  const maxUs = perCall[perCall.length - 1]! / 1000;
  await client.close();

  // MQTT.js client.publish(), QoS 2, not awaited, in the same untimed chunks.
  const bare = await mqtt.connectAsync(broker.url, { clientId: 'bench-publish-mqttjs', protocolVersion: 5, clean: true });
  const mqttjsCalls = Math.min(calls, args.quick ? 50_000 : 200_000);
  let outstanding = 0;
  const onDone = (): void => {
    outstanding--;
  };
  function mqttjsLoop(n: number): number {
    outstanding += n;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) bare.publish(topic, payload, { qos: 2 }, onDone);
    return Number(process.hrtime.bigint() - t0);
  }
  mqttjsLoop(1000);
  await until(() => outstanding === 0, 60_000, 'MQTT.js warm-up to complete');
  let mqttjsNs = 0;
  for (let done = 0; done < mqttjsCalls; done += MQTTJS_CHUNK) {
    mqttjsNs += mqttjsLoop(Math.min(MQTTJS_CHUNK, mqttjsCalls - done));
    await until(() => outstanding === 0, 120_000, 'MQTT.js publishes to complete');
  }
  await bare.endAsync();
  const mqttjsCallsPerSecond = (mqttjsCalls * 1e9) / mqttjsNs;
  const ratio = callsPerSecond / mqttjsCallsPerSecond;

  report(
    args,
    {
      bench: 'publish',
      callsPerSecond: Math.round(callsPerSecond),
      p50Us: round(p50Us, 3),
      p99Us: round(p99Us, 3),
      maxUs: round(maxUs, 1),
      mqttjsCallsPerSecond: Math.round(mqttjsCallsPerSecond),
      ratio: round(ratio, 2),
    },
    [
      ['holdfast publish() calls', `${fmt(calls)} (per-call timing over ${fmt(sampleCount)})`],
      ['holdfast calls/s, string payload (target ≥ 1,000,000)', fmt(callsPerSecond)],
      ['holdfast calls/s, Buffer payload', fmt(bytesCallsPerSecond)],
      ['holdfast p50 / p99 / max µs', `${p50Us.toFixed(3)} / ${p99Us.toFixed(3)} / ${maxUs.toFixed(1)}`],
      ['mqtt.js publish() calls/s', `${fmt(mqttjsCallsPerSecond)} (${fmt(mqttjsCalls)} calls)`],
      ['ratio (target ≥ 5)', ratio.toFixed(2)],
    ],
    describeMachine(broker.kind),
  );
} finally {
  await broker.close();
  dir.remove();
}
