import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { HoldfastClient } from './client.js';
import { deserializeError, ErrorCodes, HoldfastError } from './errors.js';
import { resolveOptions, type HoldfastOptions } from './options.js';
import { STAT_SLOTS, type FromWorker, type WorkerInit, type WorkerReady } from './protocol.js';
import { SeqAllocator } from './seq.js';
import { startHealthServer } from './health.js';

/**
 * The worker's young generation. V8's default lets it grow to 32 MB of semi-spaces, resident for the
 * life of the process, while what the worker allocates either dies young (encoding, packets) or
 * outlives any young generation (records waiting for their commit).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 6 };

/** Opening LMDB takes milliseconds; this only guards against a wedged worker. */
const OPEN_TIMEOUT_MS = 30_000;

/**
 * Validates options, starts the worker and resolves once the cache is open. It does not wait for the
 * broker: a device that boots without network starts and accepts readings at once.
 */
export async function open(options: HoldfastOptions): Promise<HoldfastClient> {
  const resolved = resolveOptions(options);
  const { port1, port2 } = new MessageChannel();
  const stats = new SharedArrayBuffer(STAT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
  const init: WorkerInit = { options: resolved, port: port2, stats };
  const worker = new Worker(new URL('./worker/main.js', import.meta.url), { workerData: init, transferList: [port2], resourceLimits: WORKER_LIMITS });

  let onError: ((err: Error) => void) | undefined;
  let onExit: ((code: number) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let client: HoldfastClient | undefined;
  // What the worker says until open() has returned (the start's 'draining' and 'drain-start' come
  // before 'ready'), kept in order for the client rather than dropped; see release().
  let held: FromWorker[] | undefined = [];
  let onReady: ((msg: FromWorker) => void) | undefined;
  const route = (msg: FromWorker): void => {
    if (client === undefined) onReady?.(msg);
    else if (held) held.push(msg);
    else client.receive(msg);
  };
  const release = (): void => {
    for (const msg of held ?? []) client!.receive(msg);
    held = undefined;
  };
  port1.on('message', route);
  try {
    const ready = await new Promise<WorkerReady>((resolve, reject) => {
      onReady = (msg) => {
        if (msg.type === 'ready') resolve(msg);
        else if (msg.type === 'error') reject(deserializeError(msg.error));
        else held!.push(msg);
      };
      onError = (err) => reject(new HoldfastError(ErrorCodes.WORKER_CRASHED, `holdfast worker failed to start: ${err.message}`, { cause: err }));
      onExit = (code) => {
        // 'exit' can overtake the worker's last message (why it gave up, e.g. a wrong cacheKey): read
        // that first, so the app gets the reason rather than a crash.
        const last = receiveMessageOnPort(port1)?.message as FromWorker | undefined;
        if (last) route(last);
        reject(new HoldfastError(ErrorCodes.WORKER_CRASHED, `holdfast worker exited during open() (code ${code})`));
      };
      timer = setTimeout(() => reject(new HoldfastError(ErrorCodes.TIMEOUT, `open() took longer than ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS);
      worker.once('error', onError);
      worker.once('exit', onExit);
    });
    const seqs = new SeqAllocator(ready.epoch, () => port1.postMessage({ type: 'reserveEpoch' }));
    client = new HoldfastClient(worker, port1, stats, seqs, resolved, ready);
    if (resolved.health) {
      try {
        client.attachHealth(await startHealthServer(client, { ...resolved.health, maxCache: resolved.maxCache, cacheDir: resolved.cacheDir }));
      } catch (err) {
        release();
        await client.close();
        throw err;
      }
    }
    // After the app's continuation of `await open()`, where it attaches its listeners.
    setImmediate(release);
    return client;
  } catch (err) {
    port1.close();
    await worker.terminate();
    throw err;
  } finally {
    clearTimeout(timer);
    if (onError) worker.off('error', onError);
    if (onExit) worker.off('exit', onExit);
  }
}
