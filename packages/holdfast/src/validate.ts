import { ErrorCodes, HoldfastError } from './errors.js';

/** MQTT strings carry a 16-bit length prefix. */
export const MAX_TOPIC_BYTES = 65_535;
/** MQTT's largest remaining length (256 MiB − 1); a payload can never exceed it. */
export const MAX_PAYLOAD_BYTES = 268_435_455;
export const MIN_PRIORITY = 1;
export const MAX_PRIORITY = 10;
export const DEFAULT_PRIORITY = 5;

export interface PublishOptions {
  /** 1 (lowest, evicted first) to 10. @default 5 */
  priority?: number;
  /** Overrides the client's qos for this message. @default the client's qos */
  qos?: 1 | 2;
  /** MQTT retain flag. @default false */
  retain?: boolean;
}

function invalidTopic(reason: string, topic: string): never {
  const shown = topic.length > 60 ? `${JSON.stringify(topic.slice(0, 60))}…` : JSON.stringify(topic);
  throw new HoldfastError(ErrorCodes.INVALID_TOPIC, `topic ${reason}; got ${shown}`, { details: { field: 'topic' } });
}

// publish() in a loop usually repeats one topic; remembering the last good one skips the scan.
let lastValidTopic = '';

/** Throws INVALID_TOPIC unless `topic` is a topic name MQTT allows in a PUBLISH. */
export function validateTopic(topic: unknown): asserts topic is string {
  if (topic === lastValidTopic && topic !== '') return;
  if (typeof topic !== 'string') {
    throw new HoldfastError(ErrorCodes.INVALID_TOPIC, `topic must be a string; got ${typeof topic}`, { details: { field: 'topic' } });
  }
  if (topic.length === 0) invalidTopic('must not be empty', topic);
  // UTF-16 length is a lower bound of the UTF-8 length and 3x an upper bound: only measure when it matters.
  if (topic.length * 3 > MAX_TOPIC_BYTES && Buffer.byteLength(topic, 'utf8') > MAX_TOPIC_BYTES) {
    invalidTopic(`must be at most ${MAX_TOPIC_BYTES} bytes of UTF-8`, topic);
  }
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x23 || c === 0x2b) invalidTopic("must not contain the wildcards '+' or '#' (they are only for subscriptions)", topic);
    if (c === 0) invalidTopic('must not contain the NUL character', topic);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = topic.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) invalidTopic('must be valid UTF-16 (a lone surrogate cannot be encoded)', topic);
      i++;
    }
  }
  lastValidTopic = topic;
}

/**
 * Throws INVALID_PAYLOAD unless `payload` is a string or bytes MQTT can carry. It does not copy: the
 * facade copies bytes into its batch, so the caller may reuse its buffer once publish() returns.
 */
export function validatePayload(payload: unknown): asserts payload is string | Uint8Array {
  if (typeof payload === 'string') {
    if (payload.length > MAX_PAYLOAD_BYTES / 3 && Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) tooLarge();
    return;
  }
  if (payload instanceof Uint8Array) {
    if (payload.byteLength > MAX_PAYLOAD_BYTES) tooLarge();
    return;
  }
  const got = payload === null ? 'null' : Array.isArray(payload) ? 'an array' : typeof payload;
  throw new HoldfastError(ErrorCodes.INVALID_PAYLOAD, `payload must be a string, Buffer or Uint8Array; got ${got}`, {
    details: { field: 'payload' },
  });
}

function tooLarge(): never {
  throw new HoldfastError(ErrorCodes.INVALID_PAYLOAD, `payload must be at most ${MAX_PAYLOAD_BYTES} bytes (MQTT's limit)`, {
    details: { field: 'payload' },
  });
}

export function validateQos(qos: unknown, field = 'qos'): asserts qos is 1 | 2 {
  if (qos !== 1 && qos !== 2) {
    throw new HoldfastError(ErrorCodes.INVALID_QOS, `${field} must be 1 or 2; got ${String(qos)}`, { details: { field } });
  }
}

export function validatePriority(priority: unknown): asserts priority is number {
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < MIN_PRIORITY || priority > MAX_PRIORITY) {
    throw new HoldfastError(
      ErrorCodes.INVALID_PRIORITY,
      `priority must be an integer from ${MIN_PRIORITY} to ${MAX_PRIORITY}; got ${String(priority)}`,
      { details: { field: 'priority' } },
    );
  }
}

/** Validates publish()'s third argument; returns nothing so the hot path allocates nothing. */
export function validatePublishOptions(opts: unknown): asserts opts is PublishOptions | undefined {
  if (opts === undefined) return;
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, 'publish options must be an object { priority, qos, retain }', {
      details: { field: 'options' },
    });
  }
  const o = opts as Record<string, unknown>;
  for (const key in o) {
    if (key !== 'priority' && key !== 'qos' && key !== 'retain') {
      throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, `publish option '${key}' is not known (known: priority, qos, retain)`, {
        details: { field: key },
      });
    }
  }
  if (o.priority !== undefined) validatePriority(o.priority);
  if (o.qos !== undefined) validateQos(o.qos);
  if (o.retain !== undefined && typeof o.retain !== 'boolean') {
    throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, `retain must be a boolean; got ${typeof o.retain}`, { details: { field: 'retain' } });
  }
}
