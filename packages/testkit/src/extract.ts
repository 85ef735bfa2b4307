/*
 * Turning a received MQTT message into the readings it carries. The default understands
 * what holdfast publishes; callers compose their own (e.g. unpacking bulk messages).
 */

export interface Reading {
  device: string;
  seq: number;
}

export interface AuditMessage {
  topic: string;
  payload: Buffer;
  /** MQTT 5 publish properties as MQTT.js decodes them (userProperties, contentType, …). */
  properties?: Record<string, unknown>;
}

export type Extract = (msg: AuditMessage) => Reading[];

/** MQTT 5 user property names that holdfast stamps on every message. */
export const DEVICE_PROPERTY = 'holdfast-client';
export const SEQ_PROPERTY = 'holdfast-seq';

/** A user property may repeat; MQTT.js then gives an array. The first value wins. */
function firstString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
  return undefined;
}

function fromUserProperties(properties: Record<string, unknown> | undefined): Reading | undefined {
  const user = properties?.['userProperties'];
  if (typeof user !== 'object' || user === null) return undefined;
  const props = user as Record<string, unknown>;
  const device = firstString(props[DEVICE_PROPERTY]);
  const seqText = firstString(props[SEQ_PROPERTY]);
  if (device === undefined || seqText === undefined || !/^\d+$/.test(seqText)) return undefined;
  const seq = Number(seqText);
  return Number.isSafeInteger(seq) ? { device, seq } : undefined;
}

function fromJson(payload: Buffer): Reading | undefined {
  // Cheap pre-check so binary payloads are not decoded and parsed for nothing.
  let i = 0;
  while (i < payload.length && (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)) i++;
  if (payload[i] !== 0x7b /* { */) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { device, seq } = value as { device?: unknown; seq?: unknown };
  if (typeof device !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq)) return undefined;
  return { device, seq };
}

/**
 * (a) MQTT 5 user properties `holdfast-client` and `holdfast-seq` (decimal string);
 * (b) else a JSON object payload with `device` (string) and `seq` (integer);
 * (c) else no readings.
 */
export function defaultExtract(msg: AuditMessage): Reading[] {
  const reading = fromUserProperties(msg.properties) ?? fromJson(msg.payload);
  return reading === undefined ? [] : [reading];
}
