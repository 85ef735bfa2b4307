/**
 * throughput: sequential QoS 2 messages/s through holdfast (one in flight, as it always sends)
 * against bare MQTT.js publishAsync awaited one at a time, on the same Mosquitto, in the same run.
 * The bare client the ratio is taken against has the MQTT.js options holdfast's own client uses, so
 * the ratio measures holdfast's overhead, not option tuning; bare MQTT.js with its default options is
 * the second line. All four runs publish the same payload to the same topic. Each round runs them in a rotated order, so
 * none always goes first, and the ratio is the median of the per-round ratios: the two sides of a
 * round run seconds apart, so drift on a shared machine cancels out in the pair.
 *
 *   pnpm bench throughput [--json] [--quick] [--messages N] [--rounds R]
 */
import mqtt, { type IClientOptions } from 'mqtt';
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
  // The MQTT.js options holdfast's worker passes (packages/holdfast/src/worker/link.ts, clientOptions),
  // with the holdfast client's settings above: no ping-timer reset per ack, no debug-logger calls, no
  // pre-built packet-id buffers. Holdfast's own code (its outgoing store, one socket write per packet)
  // is what the ratio measures.
  const holdfastOptions: IClientOptions = {
    protocolVersion: 5,
    clean: true,
    properties: { sessionExpiryInterval: 0 },
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: 0,
    resubscribe: true,
    queueQoSZero: false,
    reschedulePings: false,
    log: () => {},
    writeCache: false,
  };
  const bare = await mqtt.connectAsync(broker.url, { ...holdfastOptions, clientId: 'bench-throughput-mqttjs' });
  const defaults = await mqtt.connectAsync(broker.url, { clientId: 'bench-throughput-mqttjs-defaults', protocolVersion: 5, clean: true });

  async function runHoldfast(n: number): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) holdfast.publish(topic, payload);
    await holdfast.drained();
    return (n * 1000) / (performance.now() - t0);
  }
  async function publishLoop(client: mqtt.MqttClient, n: number): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await client.publishAsync(topic, payload, { qos: 2 });
    return (n * 1000) / (performance.now() - t0);
  }
  const runMqttjs = (n: number): Promise<number> => publishLoop(bare, n);
  const runMqttjsDefaults = (n: number): Promise<number> => publishLoop(defaults, n);
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

  // Warm-up: JIT, TCP buffers and the broker's session state for all four.
  const warmUp = Math.min(500, messages);
  const runners = [runHoldfast, runMqttjs, runMqttjsDefaults, runMqttjsWithProperties];
  for (const run of runners) await run(warmUp);
  const rates: number[][] = [[], [], [], []];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < runners.length; k++) {
      const which = (r + k) % runners.length;
      rates[which]!.push(await runners[which]!(messages));
    }
    ratios.push(rates[0]!.at(-1)! / rates[1]!.at(-1)!);
    note(`round ${r + 1}/${rounds}: holdfast ${fmt(rates[0]!.at(-1)!)}/s, mqtt.js ${fmt(rates[1]!.at(-1)!)}/s (defaults ${fmt(rates[2]!.at(-1)!)}/s), ratio ${ratios.at(-1)!.toFixed(3)}`);
  }
  const [holdfastRates, mqttjsRates, defaultsRates, propertiesRates] = rates as [number[], number[], number[], number[]];
  await holdfast.close();
  await bare.endAsync();
  await defaults.endAsync();

  const holdfastPerSecond = median(holdfastRates);
  const mqttjsPerSecond = median(mqttjsRates);
  const ratio = median(ratios);
  const propertiesRatio = median(propertiesRates.map((rate, i) => rate / mqttjsRates[i]!));
  const defaultsRatio = median(holdfastRates.map((rate, i) => rate / defaultsRates[i]!));
  report(
    args,
    {
      bench: 'throughput',
      holdfastPerSecond: Math.round(holdfastPerSecond),
      mqttjsPerSecond: Math.round(mqttjsPerSecond),
      ratio: round(ratio, 3),
      mqttjsDefaultOptionsPerSecond: Math.round(median(defaultsRates)),
      defaultOptionsRatio: round(defaultsRatio, 3),
    },
    [
      ['messages per round', `${fmt(messages)} QoS 2, ${rounds} rounds (medians; ratios paired per round)`],
      ['holdfast msg/s', fmt(holdfastPerSecond)],
      ["mqtt.js publishAsync msg/s, holdfast's MQTT.js options", fmt(mqttjsPerSecond)],
      ['ratio (target ≥ 0.9)', round(ratio, 3).toFixed(3)],
      ['mqtt.js publishAsync msg/s, default options', `${fmt(median(defaultsRates))} (holdfast / this: ${defaultsRatio.toFixed(3)})`],
      ['mqtt.js + the same user property in publish() options msg/s', `${fmt(median(propertiesRates))} (ratio ${propertiesRatio.toFixed(3)})`],
    ],
    describeMachine(broker.kind),
  );
} finally {
  await broker.close();
  dir.remove();
}
