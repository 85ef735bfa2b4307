/**
 * A subscriber that expands holdfast bulk messages back into readings. With `bulk` on, a device sends
 * its cached backlog packed into messages on `holdfast/bulk/<clientId>`; live readings still arrive
 * one by one on their own topics. This receiver handles both and prints one JSON line per reading:
 *   {"topic":"sensors/dev-1/temperature","seq":4294967297,"ts":1700000000000,"bytes":42,"bulk":true}
 *
 *   node --import tsx examples/bulk-receiver.ts mqtt://127.0.0.1:1883 [--topics 'sensors/#'] [--duration 60] [--count N]
 *
 * It exits by itself after --duration seconds (default 60) or once --count readings have arrived,
 * printing {"event":"done","readings":…,"bulks":…} last. Payloads are counted, not printed.
 */
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { HoldfastError, MESSAGE_ID_PROPERTY, parseMessageId, unpackBulk } from 'holdfast';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    topics: { type: 'string', default: 'sensors/#' },
    duration: { type: 'string', default: '60' },
    count: { type: 'string' },
  },
});
const brokerUrl = positionals[0] ?? process.env.HOLDFAST_BROKER ?? 'mqtt://127.0.0.1:1883';
const durationS = Number(values.duration);
const wanted = values.count === undefined ? Infinity : Number(values.count);
const BULK_TOPICS = 'holdfast/bulk/#';

const print = (line: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

/** holdfast stamps single messages with `<clientId>/<seq>` as an MQTT 5 user property. */
function seqOf(properties: mqtt.IPublishPacket['properties']): number | undefined {
  return parseMessageId(properties?.userProperties?.[MESSAGE_ID_PROPERTY])?.seq;
}

const client = await mqtt.connectAsync(brokerUrl, { protocolVersion: 5, clean: true, clientId: `bulk-receiver-${process.pid}` });
let readings = 0;
let bulks = 0;
let finished = false;

async function finish(): Promise<void> {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  await client.endAsync();
  print({ event: 'done', readings, bulks });
}

client.on('message', (topic, payload, packet) => {
  if (finished) return;
  if (topic.startsWith('holdfast/bulk/')) {
    try {
      const expanded = unpackBulk(payload);
      bulks++;
      for (const r of expanded) print({ topic: r.topic, seq: r.seq, ts: r.ts, bytes: r.payload.length, bulk: true });
      readings += expanded.length;
    } catch (err) {
      // Not a holdfast bulk (someone else published on the topic): report it and keep going.
      const reason = err instanceof HoldfastError ? err.code : String(err);
      print({ event: 'invalid-bulk', topic, reason });
    }
  } else {
    print({ topic, seq: seqOf(packet.properties), bytes: payload.length, bulk: false });
    readings++;
  }
  if (readings >= wanted) void finish();
});

const deadline = setTimeout(() => void finish(), durationS * 1000);
await client.subscribeAsync([BULK_TOPICS, ...values.topics.split(',')], { qos: 2 });
print({ event: 'ready' });
process.once('SIGINT', () => void finish());
process.once('SIGTERM', () => void finish());
