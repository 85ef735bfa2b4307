import { HoldfastClient } from './client.js';
import { resolveOptions, type HoldfastOptions } from './options.js';
import { SeqAllocator } from './seq.js';
import { startHealthServer } from './health.js';
import { Supervisor } from './supervisor.js';
import { installTestHooks, testHooksEnabled } from './test-hooks.js';

/**
 * Validates options, starts the worker and resolves once the cache is open. It does not wait for the
 * broker: a device that boots without network starts and accepts readings at once.
 */
export async function open(options: HoldfastOptions): Promise<HoldfastClient> {
  const resolved = resolveOptions(options);
  const testHooks = testHooksEnabled();
  const supervisor = await Supervisor.start(resolved, testHooks);
  const seqs = new SeqAllocator(supervisor.ready.epoch, () => supervisor.post({ type: 'reserveEpoch' }));
  const client = new HoldfastClient(supervisor, seqs, resolved);
  if (testHooks) installTestHooks(client, (fault) => supervisor.injectFault(fault));
  if (resolved.health) {
    try {
      client.attachHealth(await startHealthServer(client, { ...resolved.health, maxCache: resolved.maxCache, cacheDir: resolved.cacheDir }));
    } catch (err) {
      supervisor.release();
      await client.close();
      throw err;
    }
  }
  // What the worker said so far reaches the client after the app's continuation of `await open()`,
  // where it attaches its listeners (see Supervisor.attach).
  setImmediate(() => supervisor.release());
  return client;
}
