import { ErrorCodes, HoldfastError } from './errors.js';
import { MAX_TOPIC_BYTES } from './validate.js';

/** One message delivered to a subscription handler, on the app thread. */
export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** MQTT 5 properties (user properties, content type, …) when the broker sent any. */
  properties?: Record<string, unknown>;
}

export type MessageHandler = (message: IncomingMessage) => void;

function invalidFilter(reason: string, filter: string): never {
  throw new HoldfastError(ErrorCodes.INVALID_TOPIC, `topic filter ${reason}; got ${JSON.stringify(filter.slice(0, 60))}`, {
    details: { field: 'filter' },
  });
}

/** Validates a subscription filter per MQTT: '+' fills a whole level, '#' only a whole last level. */
export function validateFilter(filter: unknown): asserts filter is string {
  if (typeof filter !== 'string') {
    throw new HoldfastError(ErrorCodes.INVALID_TOPIC, `topic filter must be a string; got ${typeof filter}`, { details: { field: 'filter' } });
  }
  if (filter.length === 0) invalidFilter('must not be empty', filter);
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) invalidFilter(`must be at most ${MAX_TOPIC_BYTES} bytes of UTF-8`, filter);
  if (filter.includes('\u0000')) invalidFilter('must not contain the NUL character', filter);
  const levels = filter.split('/');
  levels.forEach((level, i) => {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) invalidFilter("may use '#' only as the whole last level", filter);
    if (level.includes('+') && level !== '+') invalidFilter("may use '+' only as a whole level", filter);
  });
}

/** Whether `topic` matches `filter` (wildcards do not match a leading '$' level, per MQTT). */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * The app thread's subscription table. Each handler runs in isolation: one that throws is reported
 * through `onHandlerError` and the others still run.
 */
export class Subscriptions {
  readonly #handlers = new Map<string, Set<MessageHandler>>();
  /** MQTT 5 Subscription Identifier per filter (1..268,435,455). */
  readonly #ids = new Map<string, number>();
  readonly #filtersById = new Map<number, string>();
  #nextId = 1;
  readonly #onHandlerError: (err: unknown, filter: string) => void;

  constructor(onHandlerError: (err: unknown, filter: string) => void) {
    this.#onHandlerError = onHandlerError;
  }

  /** Adds a handler; returns the new filter's subscription id, or undefined when it was known. */
  add(filter: string, handler: MessageHandler): number | undefined {
    const existing = this.#handlers.get(filter);
    if (existing) {
      existing.add(handler);
      return undefined;
    }
    this.#handlers.set(filter, new Set([handler]));
    const id = this.#nextId++;
    this.#ids.set(filter, id);
    this.#filtersById.set(id, filter);
    return id;
  }

  /** Removes every handler of a filter; returns whether it existed. */
  remove(filter: string): boolean {
    const id = this.#ids.get(filter);
    if (id !== undefined) this.#filtersById.delete(id);
    this.#ids.delete(filter);
    return this.#handlers.delete(filter);
  }

  /**
   * Runs the handlers a message is for. A broker may send one copy per matching subscription; with
   * MQTT 5 each copy names its subscriptions, so every handler sees a message once. Without
   * identifiers (MQTT 3.1.1) every matching filter's handlers run for every copy.
   */
  dispatch(message: IncomingMessage, subscriptionIds?: readonly number[]): void {
    const filters = subscriptionIds
      ? subscriptionIds.map((id) => this.#filtersById.get(id)).filter((f): f is string => f !== undefined)
      : [...this.#handlers.keys()].filter((f) => topicMatches(f, message.topic));
    for (const filter of filters) {
      const handlers = this.#handlers.get(filter);
      if (!handlers) continue;
      for (const handler of handlers) {
        try {
          handler(message);
        } catch (err) {
          this.#onHandlerError(err, filter);
        }
      }
    }
  }
}
