import { unpackBulk } from 'holdfast';

/** One reading as the audit counts it. */
export interface Reading {
  device: string;
  seq: number;
}

const BULK_PREFIX = 'holdfast/bulk/';

function firstString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  return Array.isArray(value) && typeof value[0] === 'string' ? value[0] : undefined;
}

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
 * - MQTT 5 user properties holdfast-client and holdfast-seq;
 * - else a JSON payload with `device` and a reading number `seq` or `n` (MQTT 3.1.1 publishers);
 * - else nothing (the message is counted as unidentified).
 */
export function readingsOf(topic: string, payload: Buffer, properties: Record<string, unknown> | undefined): Reading[] {
  const user = properties?.userProperties;
  const props = typeof user === 'object' && user !== null ? (user as Record<string, unknown>) : {};
  const client = firstString(props['holdfast-client']);
  if (props['holdfast-bulk'] !== undefined || topic.startsWith(BULK_PREFIX)) {
    const device = client ?? topic.slice(BULK_PREFIX.length);
    return unpackBulk(payload).map((r) => ({ device, seq: r.seq }));
  }
  const seqText = firstString(props['holdfast-seq']);
  if (client !== undefined && seqText !== undefined && /^\d+$/.test(seqText)) return [{ device: client, seq: Number(seqText) }];
  const reading = jsonReading(payload);
  return reading === undefined ? [] : [reading];
}
