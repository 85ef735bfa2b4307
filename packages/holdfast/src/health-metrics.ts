/**
 * Prometheus metrics for one client, in a Registry of their own (never prom-client's global one, so
 * several clients, or an app with its own metrics, do not collide). Values are read from stats() at
 * scrape time; nothing is counted twice.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HoldfastClient } from './client.js';
import { LATENCY_EVENT, OFFLINE_CAUSES, STATES, type DeliveryLatencyEvent } from './protocol.js';
import type { HoldfastStats } from './stats.js';


/** Up to 10 minutes: a message that waited out an outage in the cache is still one observation. */
const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600];

export interface ClientMetrics {
  readonly registry: Registry;
  /** The exposition text, from one stats() snapshot. */
  render(): Promise<string>;
  /** Stops listening to the client. */
  dispose(): void;
}

/** A counter whose value is stats()[field] at scrape time (stats counters only ever grow). */
function statCounter(registry: Registry, read: () => HoldfastStats, name: string, help: string, field: (s: HoldfastStats) => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(field(read()));
    },
  });
}

function statGauge(registry: Registry, read: () => HoldfastStats, name: string, help: string, field: (s: HoldfastStats) => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(field(read()));
    },
  });
}

export function createClientMetrics(client: HoldfastClient): ClientMetrics {
  const registry = new Registry();
  // One snapshot per scrape, so every metric of a scrape agrees with the others.
  let snapshot: HoldfastStats | undefined;
  const read = (): HoldfastStats => (snapshot ??= client.stats());

  statCounter(registry, read, 'holdfast_messages_accepted_total', 'Messages accepted by publish() since open().', (s) => s.accepted);
  statCounter(registry, read, 'holdfast_messages_delivered_total', 'Messages whose PUBCOMP (PUBACK at QoS 1) arrived.', (s) => s.delivered);
  statCounter(registry, read, 'holdfast_messages_spilled_total', 'Messages written to the cache because of trouble.', (s) => s.spilled);
  statCounter(registry, read, 'holdfast_messages_evicted_total', 'Cached messages evicted because maxCache was reached.', (s) => s.evicted);
  statCounter(registry, read, 'holdfast_messages_dead_lettered_total', 'Messages the broker refused, moved to the dead-letter store.', (s) => s.deadLettered);
  statCounter(registry, read, 'holdfast_worker_restarts_total', 'Times the worker thread died and was restarted on the same cache.', (s) => s.workerRestarts);
  statCounter(registry, read, 'holdfast_messages_lost_in_worker_crashes_total', 'Readings lost with a dead worker (only in its memory).', (s) => s.lostInWorkerCrashes);
  statCounter(registry, read, 'holdfast_reconnects_total', 'Successful reconnections after the first connection.', (s) => s.reconnects);
  new Counter({
    name: 'holdfast_disconnects_total',
    help: 'Disconnections: kind="clean" (ours, or a server DISCONNECT with a reason) or kind="network".',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const s = read();
      this.reset();
      this.inc({ kind: 'clean' }, s.cleanDisconnects);
      this.inc({ kind: 'network' }, s.networkDisconnects);
    },
  });

  statGauge(registry, read, 'holdfast_cache_messages', 'Messages in the on-disk cache.', (s) => s.cached.messages);
  statGauge(registry, read, 'holdfast_cache_bytes', 'Bytes of messages in the on-disk cache.', (s) => s.cached.bytes);
  statGauge(registry, read, 'holdfast_cache_oldest_age_seconds', 'Age of the oldest cached message (0 when the cache is empty).', (s) => s.cached.oldestAgeMs / 1000);
  statGauge(registry, read, 'holdfast_memory_queued_messages', 'Messages queued in memory.', (s) => s.memoryQueued);
  statGauge(registry, read, 'holdfast_inflight_messages', 'Messages in flight (0 or 1; a bulk counts as its readings).', (s) => s.inflight);
  statGauge(registry, read, 'holdfast_connected', '1 while connected to the broker.', (s) => (s.connected ? 1 : 0));
  new Gauge({
    name: 'holdfast_offline',
    help: '1 while the broker is out of reach, by cause: "disconnected", or "exchange-overdue" (connected, but the message in flight unanswered for over timeoutMs / 4).',
    labelNames: ['cause'],
    registers: [registry],
    collect() {
      const s = read();
      for (const cause of OFFLINE_CAUSES) this.set({ cause }, s.offlineCause === cause ? 1 : 0);
    },
  });
  statGauge(registry, read, 'holdfast_offline_seconds', 'How long the current outage has lasted; 0 while online.', (s) => s.offlineForMs / 1000);
  statGauge(registry, read, 'holdfast_cache_writable', '0 after a cache write failed (disk full).', (s) => (s.cacheWritable ? 1 : 0));
  new Gauge({
    name: 'holdfast_state',
    help: 'The client state: 1 for the current one (direct, caching, draining, closed, restarting, failed), 0 for the others.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const current = read().state;
      for (const state of STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  // Registered on the first latencies, so /metrics shows no histogram that could never fill.
  let latency: Histogram | undefined;
  const onLatency = (event: DeliveryLatencyEvent): void => {
    latency ??= new Histogram({
      name: 'holdfast_publish_to_pubcomp_seconds',
      help: 'Time from publish() to PUBCOMP (PUBACK at QoS 1), including any time spent in the cache.',
      buckets: LATENCY_BUCKETS_S,
      registers: [registry],
    });
    for (const ms of event.latenciesMs) if (Number.isFinite(ms) && ms >= 0) latency.observe(ms / 1000);
  };
  client.on(LATENCY_EVENT, onLatency);

  return {
    registry,
    async render() {
      snapshot = undefined;
      try {
        return await registry.metrics();
      } finally {
        snapshot = undefined;
      }
    },
    dispose: () => client.off(LATENCY_EVENT, onLatency),
  };
}
