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

/**
 * The MQTT 5 user property holdfast stamps on every message: `<clientId>/<seq>`. Parsed here, not with
 * holdfast's own parser, so the auditor stays an independent check of what went over the wire.
 */
const ID_PROPERTY = 'holdfast-id';

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
  const id = firstString(props[ID_PROPERTY]);
  const slash = id?.lastIndexOf('/') ?? -1;
  if (id === undefined || slash < 1 || !/^\d+$/.test(id.slice(slash + 1))) return undefined;
  const seq = Number(id.slice(slash + 1));
  return Number.isSafeInteger(seq) ? { device: id.slice(0, slash), seq } : undefined;
}

/** Cheap pre-check so binary payloads are not decoded and parsed for nothing. */
function startsLikeJsonObject(payload: Buffer): boolean {
  let i = 0;
  while (i < payload.length && (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)) i++;
  return payload[i] === 0x7b; /* { */
}

function fromJson(payload: Buffer): Reading | undefined {
  if (!startsLikeJsonObject(payload)) return undefined;
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
 * (a) the MQTT 5 user property `holdfast-id` (`<clientId>/<seq>`, the seq in decimal);
 * (b) else a JSON object payload with `device` (string) and `seq` (integer);
 * (c) else no readings.
 */
export function defaultExtract(msg: AuditMessage): Reading[] {
  const reading = fromUserProperties(msg.properties) ?? fromJson(msg.payload);
  return reading === undefined ? [] : [reading];
}

/**
 * Readings counted by the publisher's own number: a JSON payload `{ "device": string, "n": integer }`
 * (what the power-cut bench and the chaos campaign's devices send), so the count survives restarts.
 */
export function extractReadingNumber(msg: AuditMessage): Reading[] {
  if (!startsLikeJsonObject(msg.payload)) return [];
  try {
    const body = JSON.parse(msg.payload.toString('utf8')) as { device?: unknown; n?: unknown };
    if (typeof body.device === 'string' && typeof body.n === 'number') return [{ device: body.device, seq: body.n }];
  } catch {
    // not a reading
  }
  return [];
}
