import type { Link } from './link.js';

interface Subscription {
  qos: 0 | 1 | 2;
  /** The MQTT 5 Subscription Identifier: the facade gives each copy only to its own handlers. */
  id: number;
}

/**
 * The app's subscriptions, sent to the broker when needed and no more: on the first connection of
 * this run, and then only on a connection where the broker kept no session (CONNACK Session Present
 * is 0). With a session the broker still has them, and subscribing again would make it send every
 * retained message again. On MQTT 5 a subscription sent again asks for retained messages only if it
 * is new to the broker (Retain Handling 1).
 */
export class Subscriber {
  readonly #subscriptions = new Map<string, Subscription>();
  /** Filters the broker's current session is known to hold (acknowledged on a connection of this run). */
  readonly #inSession = new Set<string>();
  readonly #link: Link;
  readonly #protocolVersion: 4 | 5;

  constructor(link: Link, protocolVersion: 4 | 5) {
    this.#link = link;
    this.#protocolVersion = protocolVersion;
  }

  /** A new connection: subscribe what the broker's session may lack. */
  connected(sessionPresent: boolean): void {
    if (!sessionPresent) this.#inSession.clear();
    for (const [filter, sub] of this.#subscriptions) if (!this.#inSession.has(filter)) this.#send(filter, sub);
  }

  add(filter: string, sub: Subscription): void {
    this.#subscriptions.set(filter, sub);
    this.#inSession.delete(filter);
    if (this.#link.connected) this.#send(filter, sub);
  }

  remove(filter: string): void {
    this.#subscriptions.delete(filter);
    this.#inSession.delete(filter);
    if (this.#link.connected) this.#link.unsubscribe(filter);
  }

  #send(filter: string, sub: Subscription): void {
    const connection = this.#link.connection;
    const options = this.#protocolVersion === 5 ? { qos: sub.qos, rh: 1, properties: { subscriptionIdentifier: sub.id } } : { qos: sub.qos };
    this.#link.subscribe(filter, options, (err) => {
      if (!err && this.#link.connection === connection && this.#subscriptions.get(filter) === sub) this.#inSession.add(filter);
    });
  }
}
