import { ErrorCodes, HoldfastError, serializeError } from '../errors.js';
import { Stat, type FromWorker } from '../protocol.js';
import type { CacheWriterHooks } from './cache-writer.js';

/**
 * How the cache's health reaches the app: evictions as 'evict' events and counts, a full disk as one
 * CACHE_WRITE_FAILED error per episode and cacheWritable = 0, recovery as 'cache-recovered'.
 * `changed` refreshes what the sender derives from it (the memory queue's stats).
 */
export function cacheHealthHooks(stats: Float64Array, post: (msg: FromWorker) => void, changed: () => void): Pick<CacheWriterHooks, 'evicted' | 'failed' | 'recovered'> {
  return {
    evicted: (eviction) => {
      stats[Stat.evicted]! += eviction.messages;
      const byPriority: Record<number, number> = {};
      eviction.byPriority.forEach((n, i) => n > 0 && (byPriority[i + 1] = n));
      post({ type: 'event', name: 'evict', data: { messages: eviction.messages, bytes: eviction.bytes, byPriority } });
    },
    failed: (err, first) => {
      stats[Stat.cacheWritable] = 0;
      changed();
      if (!first) return;
      const error = new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `cache write failed, evicting by priority to make room: ${(err as Error).message}`, { cause: err });
      post({ type: 'error', error: serializeError(error) });
    },
    recovered: () => {
      stats[Stat.cacheWritable] = 1;
      changed();
      post({ type: 'event', name: 'cache-recovered', data: {} });
    },
  };
}
