import type { Rec } from './record.js';

/**
 * The one QoS 2 (or QoS 1) exchange in flight: a record, a bulk of records, or a packet recovered
 * from the last run's outgoing store. It ends in exactly one of two ways: the broker completed it
 * (PUBCOMP / PUBACK), or it is dead-lettered (refused by the broker, or it made the broker drop the
 * connection again and again).
 */
export class Exchange {
  /** Set when the broker refused it (a reason code ≥ 0x80, or a packet too large). */
  refusal: string | undefined;
  /** The connection this exchange was last written on, by Link's connection number. */
  sentOn: number | undefined;
  /** Connections in a row that closed while this exchange was on them and made no progress. */
  droppedConnections = 0;
  /** Monotonic ms of the last sign of life: sent, resent, PUBREC. */
  lastProgressMs = performance.now();

  constructor(
    /** The seqs it carries, oldest first (one, or a bulk's). */
    readonly seqs: readonly number[],
    /** The records, when known (a recovered packet's may have left the cache). */
    readonly recs: readonly Rec[],
    /** Its records are in the cache and must be removed from it when it ends. */
    public cached: boolean,
    /** Left in flight by the previous run (MQTT.js resends it from the outgoing store): its packet id. */
    readonly recoveredId?: number,
  ) {}

  /** The first seq (-1 for a recovered packet that lists none: it is known by its packet id). */
  get firstSeq(): number {
    return this.seqs[0] ?? -1;
  }

  get lastSeq(): number {
    return this.seqs[this.seqs.length - 1] ?? -1;
  }
}

export interface InFlightHooks {
  /** No completion within timeoutMs of the (re)send: the sender spills. */
  timedOut(exchange: Exchange): void;
  /**
   * No progress for watchdogMs on a live connection: a lost PUBREC or PUBCOMP, or a broker that
   * answers PINGREQ but never the exchange. MQTT allows a resend only on a new connection.
   */
  stuck(exchange: Exchange, silentMs: number): void;
}

/** How often the watchdog looks; a fraction of the shortest wait it enforces. */
const WATCHDOG_TICK_DIVISOR = 4;

/**
 * Holds the exchange in flight and its two clocks: the spill timeout (timeoutMs after each send) and
 * the watchdog (watchdogMs with no progress while connected). Both are monotonic (performance.now(),
 * this thread's clock): a clock jump never fires or delays them. One timer each, re-armed with refresh(), so nothing is allocated per message.
 */
export class InFlight {
  #current: Exchange | undefined;
  #timeout: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #connected = false;
  readonly #timeoutMs: number;
  readonly #watchdogMs: number;
  readonly #hooks: InFlightHooks;

  constructor(timeoutMs: number, watchdogMs: number, hooks: InFlightHooks) {
    this.#timeoutMs = timeoutMs;
    this.#watchdogMs = watchdogMs;
    this.#hooks = hooks;
  }

  get current(): Exchange | undefined {
    return this.#current;
  }

  /** Takes the slot. The caller writes the exchange to the link (or MQTT.js resends it on connect). */
  begin(exchange: Exchange, connection: number | undefined): void {
    this.#current = exchange;
    this.sent(connection);
  }

  /** The exchange went on the wire (again) on `connection`: its clocks restart. */
  sent(connection: number | undefined): void {
    const exchange = this.#current;
    if (!exchange) return;
    if (connection !== undefined) exchange.sentOn = connection;
    exchange.lastProgressMs = performance.now();
    if (this.#timeout) this.#timeout.refresh();
    else this.#timeout = setTimeout(() => this.#onTimeout(), this.#timeoutMs).unref();
    this.#armWatchdog();
  }

  /** A PUBREC (the first half of QoS 2) arrived for it. */
  progressed(): void {
    const exchange = this.#current;
    if (!exchange) return;
    exchange.lastProgressMs = performance.now();
    exchange.droppedConnections = 0;
  }

  /** Frees the slot; returns what was in it. The watchdog keeps ticking: nothing is set up per message. */
  end(): Exchange | undefined {
    const exchange = this.#current;
    this.#current = undefined;
    return exchange;
  }

  /**
   * The connection closed. Returns how many connections in a row closed with this exchange on them
   * and no progress since it was written (the disconnect-poison count), or 0 when it was not on it.
   */
  connectionClosed(connection: number): number {
    this.#connected = false;
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    const exchange = this.#current;
    if (!exchange || exchange.sentOn !== connection) return 0;
    return ++exchange.droppedConnections;
  }

  connectionOpened(): void {
    this.#connected = true;
    this.#armWatchdog();
  }

  stop(): void {
    clearTimeout(this.#timeout);
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  #onTimeout(): void {
    const exchange = this.#current;
    if (exchange) this.#hooks.timedOut(exchange);
  }

  /** One interval per connection (not per exchange): a tick with nothing in flight does nothing. */
  #armWatchdog(): void {
    if (!this.#connected || this.#watchdog) return;
    const tick = Math.max(10, Math.floor(this.#watchdogMs / WATCHDOG_TICK_DIVISOR));
    this.#watchdog = setInterval(() => this.#checkWatchdog(), tick).unref();
  }

  #checkWatchdog(): void {
    const exchange = this.#current;
    if (!exchange || !this.#connected) return;
    const silentMs = performance.now() - exchange.lastProgressMs;
    if (silentMs < this.#watchdogMs) return;
    // Once per stuck episode: the reconnect that follows resends it and restarts its clock.
    exchange.lastProgressMs = performance.now();
    this.#hooks.stuck(exchange, silentMs);
  }
}
