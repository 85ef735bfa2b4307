import type { IClientOptions } from 'mqtt';

type IMessageIdProvider = NonNullable<IClientOptions['messageIdProvider']>;

/** Packet ids 1..PUBLISH_ID_SPAN carry readings; the rest are for SUBSCRIBE and UNSUBSCRIBE. */
const PUBLISH_ID_SPAN = 65_000;
const OTHER_FIRST = PUBLISH_ID_SPAN + 1;
const OTHER_LAST = 65_535;

/**
 * The packet id of the exchange whose first reading is `seq`. Derived, not stored: after a power cut a
 * reading still in the cache is resent with the id it went out with, so a broker holding it in a
 * persistent session sees a duplicate and does not deliver it twice, with no write per reading to
 * remember the id. Consecutive exchanges get different ids (one is in flight at a time).
 */
export function publishIdFor(seq: number): number {
  return (seq % PUBLISH_ID_SPAN) + 1;
}

/**
 * MQTT.js's packet-id seam (its IMessageIdProvider). A PUBLISH takes the id the sender derived for it
 * (nextPublish); anything else MQTT.js sends with an id (SUBSCRIBE, UNSUBSCRIBE) takes one from a range
 * no reading uses, so a subscription never collides with the exchange in flight.
 */
export class DerivedMessageIds implements IMessageIdProvider {
  #nextPublish: number | undefined;
  #nextOther = OTHER_FIRST;
  #last: number | null = null;

  /** The id the next PUBLISH MQTT.js allocates for will get. */
  nextPublish(seq: number): void {
    this.#nextPublish = publishIdFor(seq);
  }

  allocate(): number {
    let id: number;
    if (this.#nextPublish !== undefined) {
      id = this.#nextPublish;
      this.#nextPublish = undefined;
    } else {
      id = this.#nextOther;
      this.#nextOther = id === OTHER_LAST ? OTHER_FIRST : id + 1;
    }
    this.#last = id;
    return id;
  }

  getLastAllocated(): number | null {
    return this.#last;
  }

  /** Resends (after a reconnect) reuse their ids; one exchange is in flight at a time, so none collide. */
  register(): boolean {
    return true;
  }

  deallocate(): void {}

  clear(): void {}
}
