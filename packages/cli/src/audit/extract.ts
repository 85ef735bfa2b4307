import { MESSAGE_ID_PROPERTY, parseMessageId, unpackBulk } from 'holdfast';

/** One reading as the audit counts it. */
export interface Reading {
  device: string;
  seq: number;
}

const BULK_PREFIX = 'holdfast/bulk/';

function jsonReading(payload: Buffer): Reading | undefined {
  if (payload[0] !== 0x7b /* { */) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { device, seq, n } = value as { device?: unknown; seq?: unknown; n?: unknown };
  const number = typeof seq === 'number' ? seq : n;
  if (typeof device !== 'string' || typeof number !== 'number' || !Number.isSafeInteger(number) || number < 1) return undefined;
  return { device, seq: number };
}

/**
 * The readings one message carries:
 * - a holdfast bulk message (MQTT 5 property holdfast-bulk, or a topic under holdfast/bulk/): each
 *   packed reading with its own seq;
 * - the MQTT 5 user property holdfast-id (`<clientId>/<seq>`);
 * - else a JSON payload with `device` and a reading number `seq` or `n` (MQTT 3.1.1 publishers);
 * - else nothing (the message is counted as unidentified).
 */
export function readingsOf(topic: string, payload: Buffer, properties: Record<string, unknown> | undefined): Reading[] {
  const user = properties?.userProperties;
  const props = typeof user === 'object' && user !== null ? (user as Record<string, unknown>) : {};
  const id = parseMessageId(props[MESSAGE_ID_PROPERTY]);
  if (props['holdfast-bulk'] !== undefined || topic.startsWith(BULK_PREFIX)) {
    const device = id?.clientId ?? topic.slice(BULK_PREFIX.length);
    return unpackBulk(payload).map((r) => ({ device, seq: r.seq }));
  }
  if (id !== undefined) return [{ device: id.clientId, seq: id.seq }];
  const reading = jsonReading(payload);
  return reading === undefined ? [] : [reading];
}
