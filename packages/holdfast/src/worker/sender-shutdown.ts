import type { Cache } from './cache.js';
import type { CacheWriter } from './cache-writer.js';
import type { DeliveryLedger } from './delivery-ledger.js';
import type { Dispatcher } from './dispatcher.js';
import { monotonicMs } from './clock.js';
import type { Rec } from './record.js';

/**
 * close()'s two steps after the sender stopped taking input and spilled what was pending. Both settle
 * within their budget: a full disk or a silent broker never holds close() past closeTimeoutMs.
 */

/**
 * Commits what waits to be written (windowed input, records waiting for disk space) and the removals of
 * what was delivered. Resolves with the readings a full disk would not take before `deadlineMs`.
 */
export async function commitPendingWrites(writer: CacheWriter, ledger: DeliveryLedger, cache: Cache, deadlineMs: number): Promise<Rec[]> {
  const unsaved = await writer.stop(deadlineMs);
  ledger.stop();
  await ledger.removeDelivered();
  await cache.settled();
  return unsaved;
}

/** Waits (bounded) for the message in flight to complete, so a clean close leaves nothing mid-air. */
export async function settleInflight(dispatcher: Dispatcher, ledger: DeliveryLedger, cache: Cache, timeoutMs: number): Promise<void> {
  const deadline = monotonicMs() + timeoutMs;
  while (dispatcher.busy && monotonicMs() < deadline) await new Promise((r) => setTimeout(r, 10));
  dispatcher.stop();
  // What completed while closing leaves the cache now, not with a batch that will not come.
  if (dispatcher.busy) await ledger.removeDelivered();
  else await ledger.closeCleanly().catch(() => undefined);
  await cache.settled();
}
