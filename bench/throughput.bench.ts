/**
 * throughput: sequential QoS 2 messages/s through holdfast (one in flight, as it always sends)
 * against bare MQTT.js publishAsync awaited one at a time, on the same Mosquitto, in the same run.
 * All three runs publish the same payload to the same topic. Each round runs them in a rotated order, so
 * none always goes first, and the ratio is the median of the per-round ratios: the two sides of a
 * round run seconds apart, so drift on a shared machine cancels out in the pair.
 *
 *   pnpm bench throughput [--json] [--quick] [--messages N] [--rounds R]
 */
import mqtt from 'mqtt';
import { open } from 'holdfast';
import { startBroker } from '@holdfast/testkit';
import { describeMachine, fmt, median, note, parseBenchArgs, report, round, tempDir } from './lib/common.js';

const args = parseBenchArgs(['messages', 'rounds']);
// Many short rounds rather than a few long ones: on a shared machine the load shifts within seconds,
// and the two runs of a round should see the same load.
const messages = args.numbers.messages ?? (args.quick ? 2000 : 5000);
const rounds = args.numbers.rounds ?? (args.quick ? 2 : 15);
const payload = JSON.stringify({ device: 'bench', t: 1_700_000_000_000, celsius: 21.5 });
const topic = 'bench/throughput';

const broker = await startBroker({ log: note });
const dir = tempDir('throughput');
try {
  const holdfast = await open({
    broker: broker.url,
    clientId: 'bench-throughput-holdfast',
    cacheDir: dir.path,
    highWater: { messages: messages * 2 },
    session: { clean: true },
  });
  const bare = await mqtt.connectAsync(broker.url, { clientId: 'bench-throughput-mqttjs', protocolVersion: 5, clean: true });

  async function runHoldfast(n: number): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) holdfast.publish(topic, payload);
    await holdfast.drained();
    return (n * 1000) / (performance.now() - t0);
  }
  async function runMqttjs(n: number): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await bare.publishAsync(topic, payload, { qos: 2 });
    return (n * 1000) / (performance.now() - t0);
  }
  /**
   * Bare MQTT.js carrying holdfast's user property the usual way, in publish()'s options: what the
   * property costs an MQTT.js user, most of it V8's slow object spread (see worker/packet.ts).
   */
  async function runMqttjsWithProperties(n: number): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const userProperties = { 'holdfast-id': `bench-throughput-holdfast/${2 ** 32 + i}` };
      await bare.publishAsync(topic, payload, { qos: 2, properties: { userProperties } });
    }
    return (n * 1000) / (performance.now() - t0);
  }

  // Warm-up: JIT, TCP buffers and the broker's session state for all three.
  const warmUp = Math.min(500, messages);
  await runHoldfast(warmUp);
  await runMqttjs(warmUp);
  await runMqttjsWithProperties(warmUp);
  const runners = [runHoldfast, runMqttjs, runMqttjsWithProperties];
  const rates: number[][] = [[], [], []];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < runners.length; k++) {
      const which = (r + k) % runners.length;
      rates[which]!.push(await runners[which]!(messages));
    }
    ratios.push(rates[0]!.at(-1)! / rates[1]!.at(-1)!);
    note(`round ${r + 1}/${rounds}: holdfast ${fmt(rates[0]!.at(-1)!)}/s, mqtt.js ${fmt(rates[1]!.at(-1)!)}/s, ratio ${ratios.at(-1)!.toFixed(3)}`);
  }
  const [holdfastRates, mqttjsRates, propertiesRates] = rates as [number[], number[], number[]];
  await holdfast.close();
  await bare.endAsync();

  const holdfastPerSecond = median(holdfastRates);
  const mqttjsPerSecond = median(mqttjsRates);
  const ratio = median(ratios);
  const propertiesRatio = median(propertiesRates.map((rate, i) => rate / mqttjsRates[i]!));
  report(
    args,
    { bench: 'throughput', holdfastPerSecond: Math.round(holdfastPerSecond), mqttjsPerSecond: Math.round(mqttjsPerSecond), ratio: round(ratio, 3) },
    [
      ['messages per round', `${fmt(messages)} QoS 2, ${rounds} rounds (medians; ratios paired per round)`],
      ['holdfast msg/s', fmt(holdfastPerSecond)],
      ['mqtt.js publishAsync msg/s', fmt(mqttjsPerSecond)],
      ['ratio (target ≥ 0.9)', round(ratio, 3).toFixed(3)],
      ['mqtt.js + the same user property in publish() options msg/s', `${fmt(median(propertiesRates))} (ratio ${propertiesRatio.toFixed(3)})`],
    ],
    describeMachine(broker.kind),
  );
} finally {
  await broker.close();
  dir.remove();
}
