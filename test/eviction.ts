/**
 * Eviction judged from outside the client: which readings reached a separate subscriber, and what
 * /health said over HTTP. Used by the maxCache and disk-full tests.
 */
import assert from 'node:assert/strict';
import { open, type HealthReport, type HoldfastClient, type HoldfastOptions } from 'holdfast';
import type { Auditor } from '@holdfast/testkit';
import { onFreePorts, sleep, waitUntil } from './helpers.js';

export interface PublishedReading {
  n: number;
  priority: number;
}

/** Readings published at one priority (the device fixture's): eviction must take them oldest first. */
export const onePriority = (numbers: readonly number[]): PublishedReading[] => numbers.map((n) => ({ n, priority: 0 }));

/**
 * Judges eviction by what reached the subscriber, never by the client's counters. `arrived` must be
 * settled (every survivor in). It holds when the arrivals are unique and in publish order, and every
 * reading that never arrived was one eviction was allowed to take: when it went, each older reading
 * of the same or a lower priority had gone already (lowest priority first, oldest first within it).
 * `inFlight`: readings that may survive regardless, because they were the exchange in flight when
 * eviction ran (never evicted: the broker may already have them). Returns the evicted reading
 * numbers, ascending.
 */
export function assertEvictedByPriority(published: readonly PublishedReading[], arrived: readonly number[], inFlight: readonly number[] = []): number[] {
  assert.ok(arrived.every((n, i) => i === 0 || n > arrived[i - 1]!), `arrivals unique and in publish order: ${arrived.join(' ')}`);
  const survived = new Set(arrived);
  const sorted = [...published].sort((a, b) => a.n - b.n);
  const evicted = sorted.filter((r) => !survived.has(r.n));
  // For each priority, the newest evicted reading: everything older at or below it must be gone too.
  const newestEvicted = new Map<number, number>();
  for (const r of evicted) newestEvicted.set(r.priority, r.n);
  for (const r of sorted) {
    if (!survived.has(r.n) || inFlight.includes(r.n)) continue;
    for (const [priority, n] of newestEvicted) {
      assert.ok(
        !(r.priority <= priority && r.n < n),
        `reading ${r.n} (priority ${r.priority}) survived though the newer reading ${n} of priority ${priority} was evicted`,
      );
    }
  }
  return evicted.map((r) => r.n);
}

/** open() with its /health endpoint on a free port; returns the client and a reader of /health. */
export async function openWithHealth(options: HoldfastOptions): Promise<{ client: HoldfastClient; health(): Promise<HealthReport> }> {
  return onFreePorts(1, async ([port]) => {
    const client = await open({ ...options, health: { port: port! } });
    const health = async (): Promise<HealthReport> => (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as HealthReport;
    return { client, health };
  });
}

/** Reads /health every 20 ms into `reports` until a report satisfies `until`, or 30 s passed. */
export async function watchHealth(health: () => Promise<HealthReport>, reports: HealthReport[], until: (report: HealthReport) => boolean): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const report = await health();
    reports.push(report);
    if (until(report) || performance.now() > deadline) return;
    await sleep(20);
  }
}

/**
 * Once the backlog is delivered, publishes one last reading `fence` and waits (with the auditor's
 * settle window) until it arrives: every earlier reading the broker got is in by then (one topic,
 * one publisher, in order). Returns the device's arrivals before the fence.
 */
export async function settledArrivals(auditor: Auditor, client: HoldfastClient, device: string, fence: number): Promise<number[]> {
  // Not before: into a full cache, the fence itself would evict a reading.
  await client.drained();
  // Journal mode refuses a reading while its intake log cannot write (it retries a second after a
  // failure): the fence waits for the log to take it.
  await waitUntil(() => {
    try {
      client.publish(`sensors/${device}`, JSON.stringify({ device, n: fence }), { priority: 10 });
      return true;
    } catch (err) {
      if ((err as { code?: string }).code !== 'HOLDFAST_CACHE_WRITE_FAILED') throw err;
      return false;
    }
  }, 10_000, 'the fence reading to be accepted');
  const report = await auditor.waitFor({ [device]: [fence] }, 20_000);
  assert.equal(report.lost, 0, 'the fence reading arrived');
  return auditor.arrivals(device).filter((n) => n !== fence);
}
