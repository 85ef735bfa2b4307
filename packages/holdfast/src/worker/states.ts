/**
 * The sender's state machine, in one table: state × event → next state, whether the pending stream
 * spills, and why. Sender.start() picks the first state (DRAINING with a backlog from the last run,
 * else DIRECT); after that Sender.#on() is the only place that changes the state, and it does so only
 * through this table, so a reader can check every transition here.
 *
 *   DIRECT    sends from memory, oldest first. New input joins the memory queue.
 *   CACHING   sends nothing new: an exchange is stuck or the link is down. New input goes to the cache.
 *   DRAINING  sends from the cache, oldest first, before anything newer. New input goes to the cache.
 */
export type SenderState = 'direct' | 'caching' | 'draining';

export type SenderEvent =
  /** The exchange in flight has had no PUBCOMP (PUBACK at QoS 1) for timeoutMs. */
  | 'timeout'
  /** The memory queue passed highWater.messages or highWater.bytes. */
  | 'high-water'
  /**
   * Spill mode: the oldest reading in memory has waited timeoutMs. Each exchange completes, but the
   * link is too slow for the rate (high latency): memory would grow past what a crash may lose.
   */
  | 'falling-behind'
  /** The connection dropped, or an attempt to connect failed: the broker is known to be unreachable. */
  | 'link-down'
  /** close() was called: what is pending goes to the cache. */
  | 'close'
  /** flush() while the link is down, in a mode that keeps readings in memory: make them durable now. */
  | 'flush-offline'
  /** Dead letters went back into the cache; they go out before anything newer. */
  | 'requeue'
  /** Nothing is in flight and the link is ready: sending can go on, from the cache. */
  | 'resume'
  /** The drain found the cache empty. */
  | 'cache-empty';

export interface Transition {
  to: SenderState;
  /** Whether the pending stream (the exchange in flight and the memory queue) is written to the cache. */
  spill: boolean;
  /** Whether it applies with nothing pending (nothing in flight, nothing queued in memory). */
  evenIfIdle: boolean;
  reason: string;
}

const SPILL_REASON = {
  timeout: 'no PUBCOMP within timeoutMs: the exchange is stuck, so the pending stream goes to the cache',
  'high-water': 'the memory queue passed its high-water mark: the pending stream goes to the cache',
  'falling-behind': 'the oldest reading in memory has waited timeoutMs (the link cannot keep up): the pending stream goes to the cache',
  'link-down': 'the link is down: the pending stream goes to the cache now rather than after timeoutMs',
  close: 'close(): what is pending goes to the cache',
  'flush-offline': 'flush() while the link is down: the pending stream goes to the cache to be durable',
  requeue: 'dead letters were requeued: they must go out before what is queued in memory',
} as const;

const spillTo = (event: keyof typeof SPILL_REASON, evenIfIdle = false): Transition => ({ to: 'caching', spill: true, evenIfIdle, reason: SPILL_REASON[event] });
const stopSending = (reason: string): Transition => ({ to: 'caching', spill: false, evenIfIdle: true, reason });

const TABLE: Record<SenderState, Partial<Record<SenderEvent, Transition>>> = {
  direct: {
    timeout: spillTo('timeout'),
    'high-water': spillTo('high-water'),
    'falling-behind': spillTo('falling-behind'),
    // While the link is down, new input goes to the cache, not to memory.
    'link-down': spillTo('link-down', true),
    close: spillTo('close'),
    'flush-offline': spillTo('flush-offline'),
    requeue: spillTo('requeue', true),
  },
  caching: {
    resume: { to: 'draining', spill: false, evenIfIdle: true, reason: 'nothing in flight and the link is ready: the cache drains, oldest first' },
  },
  draining: {
    timeout: stopSending('the exchange being drained is stuck: wait for it before reading more of the cache'),
    'link-down': stopSending('the link is down: wait for it before reading more of the cache'),
    close: stopSending('close(): the drain stops; the cache keeps what is left'),
    'cache-empty': { to: 'direct', spill: false, evenIfIdle: true, reason: 'the cache is empty: back to sending from memory' },
  },
};

/** The transition for `event` in `state`, or undefined when the event changes nothing there. */
export function transition(state: SenderState, event: SenderEvent): Transition | undefined {
  return TABLE[state][event];
}
