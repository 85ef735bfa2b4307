import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { deserializeError, ErrorCodes, HoldfastError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import { Stat, type FromWorker, type RestartInit, type WorkerInit, type WorkerReady } from './protocol.js';
import type { RestartPolicy } from './restart-policy.js';
import { releaseCacheLock } from './worker/cache-lock.js';

/** Opening LMDB takes milliseconds; this only guards against a wedged worker. */
const OPEN_TIMEOUT_MS = 30_000;

/**
 * The worker's heap. Its young generation: V8's default lets it grow to 32 MB of semi-spaces, resident
 * for the life of the process, while what the worker allocates either dies young (encoding, packets)
 * or outlives any young generation (records waiting for their commit). Its old generation: bounded, so
 * a runaway worker dies alone (ERR_WORKER_OUT_OF_MEMORY) and is restarted, instead of taking the app's
 * process with it; the memory queue (highWater.bytes) fits four times over.
 */
export function workerLimits(options: ResolvedOptions): { maxYoungGenerationSizeMb: number; maxOldGenerationSizeMb: number } {
  return { maxYoungGenerationSizeMb: 6, maxOldGenerationSizeMb: Math.max(256, 128 + 4 * Math.ceil(options.highWater.bytes / 2 ** 20)) };
}

export interface SpawnedWorker {
  worker: Worker;
  port: MessagePort;
  ready: WorkerReady;
  /** What it said before 'ready' (a start's 'draining' and 'drain-start'), in order. */
  early: FromWorker[];
}

/** Why a worker failed to start: `refused` when it said why (a wrong key, a locked cache), not a crash. */
export class StartFailure extends Error {
  readonly error: HoldfastError;
  readonly refused: boolean;
  constructor(error: HoldfastError, refused: boolean) {
    super(error.message);
    this.error = error;
    this.refused = refused;
  }
}

/** Starts a worker and resolves once its cache is open; rejects with a StartFailure. */
export async function spawnWorker(init: Omit<WorkerInit, 'port'>): Promise<SpawnedWorker> {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL('./worker/main.js', import.meta.url), {
    workerData: { ...init, port: port2 } satisfies WorkerInit,
    transferList: [port2],
    resourceLimits: workerLimits(init.options),
  });
  let onMessage: ((msg: FromWorker) => void) | undefined;
  let onError: ((err: Error) => void) | undefined;
  let onExit: ((code: number) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const early: FromWorker[] = [];
  try {
    const ready = await new Promise<WorkerReady>((resolve, reject) => {
      onMessage = (msg) => {
        if (msg.type === 'ready') resolve(msg);
        else if (msg.type === 'error') reject(new StartFailure(deserializeError(msg.error), true));
        else if (msg.type === 'fatal') reject(new StartFailure(new HoldfastError(ErrorCodes.WORKER_CRASHED, `holdfast worker crashed during open(): ${msg.cause}`), false));
        else early.push(msg);
      };
      onError = (err) => reject(new StartFailure(new HoldfastError(ErrorCodes.WORKER_CRASHED, `holdfast worker failed to start: ${err.message}`, { cause: err }), false));
      onExit = (code) => {
        // 'exit' can overtake the worker's last message (why it gave up, e.g. a wrong cacheKey): read
        // that first, so the app gets the reason rather than a crash.
        const last = receiveMessageOnPort(port1)?.message as FromWorker | undefined;
        if (last) onMessage?.(last);
        reject(new StartFailure(new HoldfastError(ErrorCodes.WORKER_CRASHED, `holdfast worker exited during open() (code ${code})`), false));
      };
      timer = setTimeout(() => reject(new StartFailure(new HoldfastError(ErrorCodes.TIMEOUT, `open() took longer than ${OPEN_TIMEOUT_MS} ms`), false)), OPEN_TIMEOUT_MS);
      port1.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
    });
    return { worker, port: port1, ready, early };
  } catch (err) {
    port1.close();
    await worker.terminate();
    throw err;
  } finally {
    clearTimeout(timer);
    if (onMessage) port1.off('message', onMessage);
    if (onError) worker.off('error', onError);
    if (onExit) worker.off('exit', onExit);
  }
}

/**
 * Starts the client's first worker. A refusal (a wrong key, a locked cache) or a crash is the answer
 * to open(), except a crash at a record the worker decodes at start: the poison rule (restart-policy.ts)
 * can take that record out of the way, so that is tried again, as a restart would.
 */
export async function spawnFirstWorker(init: Omit<WorkerInit, 'port'>, policy: RestartPolicy): Promise<SpawnedWorker> {
  const stats = new Float64Array(init.stats);
  stats[Stat.safeBelow] = 1;
  let poison: RestartInit['poison'];
  for (;;) {
    try {
      return await spawnWorker({ ...init, restart: poison && { replayThrough: Infinity, intakeBefore: undefined, poison } });
    } catch (err) {
      if (!(err instanceof StartFailure)) throw err;
      const workingSeq = stats[Stat.workingSeq]!;
      poison = workingSeq === 0 ? undefined : (policy.died(0, 0, workingSeq, err.message) ?? poison);
      if (err.refused || workingSeq === 0 || !policy.shouldRetry) {
        // A worker that crashed during open() may hold the lock with this client's token.
        releaseCacheLock(init.options.cacheDir, init.lockToken);
        if (err.refused || workingSeq === 0) throw err.error;
        throw new HoldfastError(ErrorCodes.WORKER_FAILED, `the holdfast worker failed to start ${policy.attempt} times in a row: ${err.message}`, { cause: err.error });
      }
      stats[Stat.workingSeq] = 0;
      await new Promise((resolve) => setTimeout(resolve, policy.backoffMs));
    }
  }
}
