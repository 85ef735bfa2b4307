import type { IClientPublishOptions, IPublishPacket } from 'mqtt';
import { packBulk } from '../bulk.js';
import type { ResolvedOptions } from '../options.js';
import { formatMessageId, MESSAGE_ID_PROPERTY } from '../message-id.js';
import { FLAG_QOS2, FLAG_RETAIN } from '../protocol.js';
import type { Rec } from './record.js';

/** The MQTT 5 properties of a PUBLISH, as mqtt-packet encodes them. */
export type PublishProperties = IPublishPacket['properties'];

/** What goes into MQTT.js's publish() for one record or one bulk of records. */
export interface OutgoingPublish {
  topic: string;
  payload: Buffer | string;
  /** Only `qos` and `retain`: see `properties`. */
  options: IClientPublishOptions;
  /**
   * The MQTT 5 properties, kept out of `options`: MqttClient.publish() spreads its options over
   * defaults that lack `properties`, and on Node 20 (V8 11.3) an optimized spread that adds a key builds
   * a new hidden class on every call, costing more CPU than the rest of publish(). The outgoing store
   * gives them to the packet instead (OutgoingStore.expect and stamp).
   */
  properties: PublishProperties;
  /** An upper estimate of the packet size, for the broker's Maximum Packet Size. */
  estimatedSize: number;
}

/**
 * Builds the PUBLISH for one record, or for a bulk (a msgpack array of readings on the bulk topic).
 * With MQTT 5 it carries `holdfast-id` (`<clientId>/<seq>` of the first reading) so receivers can
 * de-duplicate, and `holdfast-bulk` (the count) for a bulk.
 */
export function buildPublish(recs: readonly Rec[], asBulk: boolean, o: ResolvedOptions): OutgoingPublish {
  const first = recs[0]!;
  const topic = asBulk ? (o.bulk as { topic: string }).topic : first.topic;
  const payload = asBulk ? packBulk(recs) : toBuffer(first.payload);
  const qos = o.qos === 1 || (!asBulk && (first.flags & FLAG_QOS2) === 0) ? 1 : 2;
  const options: IClientPublishOptions = { qos, retain: !asBulk && (first.flags & FLAG_RETAIN) !== 0 };
  let properties: PublishProperties;
  if (o.protocolVersion === 5) {
    const userProperties: Record<string, string> = { [MESSAGE_ID_PROPERTY]: formatMessageId(o.clientId, first.seq) };
    if (asBulk) userProperties['holdfast-bulk'] = String(recs.length);
    properties = { userProperties };
  }
  const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  // Fixed header, topic length and bytes, packet id, and the user properties.
  const estimatedSize = 5 + 2 + Buffer.byteLength(topic) + 2 + 160 + payloadBytes;
  return { topic, payload, options, properties, estimatedSize };
}

function toBuffer(payload: string | Uint8Array): Buffer | string {
  if (typeof payload === 'string') return payload;
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** A PUBLISH that fits the broker's Maximum Packet Size, and how many of the records it carries. */
export interface FittedPublish {
  packet: OutgoingPublish | undefined;
  count: number;
  /** The estimated size of the smallest packet tried (for the refusal's reason when nothing fits). */
  size: number;
}

/**
 * Builds the PUBLISH for `recs`, shrinking a bulk until it fits `limit` (a bulk is never refused
 * whole for its size). `packet` is undefined only when a single record does not fit.
 */
export function buildFitting(recs: readonly Rec[], asBulk: boolean, o: ResolvedOptions, limit: number | undefined): FittedPublish {
  let count = asBulk ? recs.length : 1;
  for (;;) {
    const packet = buildPublish(count === recs.length ? recs : recs.slice(0, count), asBulk, o);
    if (limit === undefined || packet.estimatedSize <= limit) return { packet, count, size: packet.estimatedSize };
    if (count === 1) return { packet: undefined, count: 0, size: packet.estimatedSize };
    // Sizes are roughly proportional to the count: jump close to the fit, at least halving.
    count = Math.max(1, Math.min(Math.floor(count / 2), Math.floor((count * limit) / packet.estimatedSize)));
  }
}
