/**
 * The worker thread's entry: opens the cache, wires the sender to MQTT.js, and serves the facade's
 * messages. Everything that touches the network or the disk runs here, never on the app thread.
 */
import { workerData } from 'node:worker_threads';
import { ErrorCodes, serializeError, type SerializedError } from '../errors.js';
import { readCacheKeyFile } from '../cache-key.js';
import { CacheCipher } from './cipher.js';
import { Stat, type FromWorker, type ToWorker, type WorkerInit } from '../protocol.js';
import type { Cache } from './cache.js';
import { openCache } from './cache-open.js';
import type { QuarantineInfo } from '../protocol.js';
import { Link } from './link.js';
import { OutgoingStore } from './outgoing-store.js';
import { createLogger, logEvent } from './log.js';
import { Sender } from './sender.js';
import { readIntakeLog, SegmentSweeper, type IntakeReplay } from './intake-replay.js';
import { acquireCacheLock, releaseCacheLock } from './cache-lock.js';
import { ensureCacheDir } from './cache-open.js';
import { deadLetterPoison } from './poison.js';
import { installFatalHandlers, reallyExit } from './fatal.js';
import { crashIfArmed, dieBy } from './test-faults.js';
import { initWorkingMark } from './working-mark.js';

/** How often delivery latencies go to the facade (for the /metrics histogram). */
const LATENCY_REPORT_MS = 1000;

const { options, port, stats: statsBuffer, lockToken, testHooks, stickyFaults, restart } = workerData as WorkerInit;
const stats = new Float64Array(statsBuffer);
initWorkingMark(stats, testHooks ? crashIfArmed : undefined);
if (testHooks) for (const fault of stickyFaults) dieBy(fault);
const log = createLogger(options.logLevel, options.clientId);
const post = (msg: FromWorker, transfer?: ArrayBuffer[]): void => {
  if (msg.type === 'event') logEvent(log, msg.name, msg.data);
  else if (msg.type === 'error') log.error({ code: msg.error.code }, msg.error.message);
  port.postMessage(msg, transfer);
};
installFatalHandlers(post);

/** The cacheKey, or the key file read here (the worker, so the app thread does no disk I/O). */
function loadCacheKey(): Buffer | undefined {
  if (options.cacheKey) return Buffer.from(options.cacheKey);
  return options.cacheKeyFile ? readCacheKeyFile(options.cacheKeyFile, 'cacheKeyFile', 'options.cacheKeyFile') : undefined;
}

async function run(): Promise<void> {
  let cache: Cache;
  let quarantined: QuarantineInfo | undefined;
  let epoch: number;
  let cacheKey: Buffer | undefined;
  let cipher: CacheCipher | undefined;
  let intake: IntakeReplay;
  try {
    cacheKey = loadCacheKey();
    cipher = cacheKey ? new CacheCipher(cacheKey) : undefined;
    // Before the cache is touched: a second client must not quarantine or drain this one's cache.
    ensureCacheDir(options.cacheDir);
    acquireCacheLock(options.cacheDir, lockToken);
    ({ cache, quarantined } = openCache(options.cacheDir, options.maxCache, cipher));
    const bounds = restart && { replayThrough: restart.replayThrough, before: restart.intakeBefore };
    intake = readIntakeLog(options.cacheDir, cache.appendedThrough, cipher, bounds);
    epoch = cache.reserveEpoch();
  } catch (err) {
    // open() fails and lets go; a restart keeps the client's lock while the supervisor tries again.
    if (!restart) releaseCacheLock(options.cacheDir, lockToken);
    post({ type: 'error', error: serializeError(err, ErrorCodes.CACHE_UNAVAILABLE) });
    port.close();
    return;
  }

  const poisonFailure = restart?.poison && (await deadLetterPoisonedRecord(cache, cipher, restart.poison));

  let sender: Sender | undefined;
  const store = new OutgoingStore(cache, (entry) => sender?.onCompleted(entry));
  const recovered = store.recover();
  if (options.durability === 'journal') store.persistAlways();
  sender = new Sender({ options, cache, store, stats, post });

  /** Filters the app subscribed to, sent again on every connection (our reconnects bypass MQTT.js's resubscribe). */
  const subscriptions = new Map<string, { qos: 0 | 1 | 2; id: number }>();
  const subscribe = (filter: string, sub: { qos: 0 | 1 | 2; id: number }): void => {
    // MQTT 5: the Subscription Identifier lets the facade give each copy only to its own handlers.
    const opts = options.protocolVersion === 5 ? { qos: sub.qos, properties: { subscriptionIdentifier: sub.id } } : { qos: sub.qos };
    link.client.subscribe(filter, opts, () => undefined);
  };
  const subscribeAll = (): void => {
    for (const [filter, sub] of subscriptions) subscribe(filter, sub);
  };

  const link = new Link(options, store, {
    up: () => {
      subscribeAll();
      if (stats[Stat.connected] === 0 && link.everConnected) stats[Stat.reconnects]! += 1;
      stats[Stat.connected] = 1;
      post({ type: 'event', name: 'connect', data: {} });
      sender?.onConnectionChange();
    },
    down: (info) => {
      stats[Stat.connected] = 0;
      stats[info.clean ? Stat.cleanDisconnects : Stat.networkDisconnects]! += 1;
      post({ type: 'event', name: 'disconnect', data: { ...info } });
      sender?.onConnectionChange();
    },
    error: (info) => {
      if (/^Invalid (puback|pubrec|pubcomp) reason code/.test(info.message)) sender?.onUnreadableRefusal(info.message);
      else post({ type: 'event', name: 'connection-error', data: { ...info } });
    },
    reconnecting: (delayMs) => post({ type: 'event', name: 'reconnecting', data: { delayMs } }),
  });
  sender.start(link.client, recovered, () => link.serverMaximumPacketSize);
  link.client.on('message', (topic, payload, packet) => {
    // A copy the facade owns; its buffer is transferred, not cloned.
    const bytes = new Uint8Array(payload);
    const properties = (packet as { properties?: Record<string, unknown> }).properties;
    post({ type: 'message', topic, payload: bytes, qos: packet.qos, retain: packet.retain, properties }, [bytes.buffer]);
  });
  // What the last run accepted but never committed goes first, ahead of anything new.
  for (const batch of intake.batches) sender.onBatch(batch);
  const sweeper = new SegmentSweeper(options.cacheDir);
  sweeper.add(intake.segments);
  const latencyTimer = setInterval(() => {
    const latenciesMs = sender?.takeLatencies() ?? [];
    if (latenciesMs.length > 0) post({ type: 'event', name: 'delivery-latency', data: { latenciesMs } });
    sweeper.sweep(sender!.lowestVolatileSeq);
    stats[Stat.heartbeat]! += 1;
  }, LATENCY_REPORT_MS);
  latencyTimer.unref();

  let closing = false;
  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'publish':
        if (closing) break;
        stats[Stat.receivedThrough] = msg.firstSeq + msg.topics.length - 1;
        sender.onBatch(msg);
        break;
      case 'flush':
        sender.flush(msg.id, msg.upTo);
        break;
      case 'drained':
        sender.whenDrained(msg.id);
        break;
      case 'deadLetters':
        // Reads see the last commit: wait for every write issued so far.
        void cache.settled().then(() => post({ type: 'reply', id: msg.id, value: cache.listDeadLetters() }));
        break;
      case 'requeue':
        void sender.requeue(msg.id, msg.seqs);
        break;
      case 'subscribe':
        subscriptions.set(msg.filter, { qos: msg.qos, id: msg.id });
        if (link.connected) subscribe(msg.filter, { qos: msg.qos, id: msg.id });
        break;
      case 'unsubscribe':
        subscriptions.delete(msg.filter);
        if (link.connected) link.client.unsubscribe(msg.filter, () => undefined);
        break;
      case 'intakeRetired':
        sweeper.add(msg.segments);
        sweeper.sweep(sender.lowestVolatileSeq);
        break;
      case 'reserveEpoch':
        post({ type: 'epoch', epoch: cache.reserveEpoch() });
        break;
      case 'close':
        if (closing) break;
        closing = true;
        void shutdown(msg.id);
        break;
      case 'testFault':
        if (testHooks) dieBy(msg.fault);
        break;
      default: {
        const never: never = msg;
        throw new Error(`unknown facade message ${JSON.stringify(never)}`);
      }
    }
  });

  async function shutdown(id: number): Promise<void> {
    const started = Date.now();
    const budget = options.closeTimeoutMs;
    clearInterval(latencyTimer);
    try {
      await sender!.stop();
      if (link.connected) await sender!.settleInflight(Math.floor(budget * 0.4));
      await link.end(Math.max(100, budget - (Date.now() - started) - 500));
      await cache.settled();
      // What the final spill could not write (a full disk) is lost with this thread: the facade reports it.
      stats[Stat.safeBelow] = Math.min(sender!.lowestVolatileSeq, stats[Stat.receivedThrough]! + 1);
      sweeper.sweep(sender!.lowestVolatileSeq);
      // lmdb-js never finishes closing after a commit the full disk refused: answer within the budget.
      await Promise.race([cache.close(), new Promise((resolve) => setTimeout(resolve, Math.max(100, budget - (Date.now() - started))).unref())]);
      releaseCacheLock(options.cacheDir, lockToken);
      stats[Stat.connected] = 0;
      post({ type: 'reply', id });
    } catch (err) {
      post({ type: 'reply', id, error: serializeError(err) });
    } finally {
      post({ type: 'closed' });
      port.close();
      log.flush();
      // LMDB and MQTT.js handles are closed; end the thread even if a stray timer lingers.
      setImmediate(() => reallyExit(0));
    }
  }

  const journalKey = options.durability === 'journal' && cacheKey ? new Uint8Array(cacheKey) : undefined;
  post({ type: 'ready', epoch, quarantined, cacheKey: journalKey });
  if (poisonFailure) post({ type: 'error', error: poisonFailure });
  if (quarantined) logEvent(log, 'quarantine', { ...quarantined });
  for (const info of intake.quarantined) post({ type: 'event', name: 'quarantine', data: { ...info } });
  if (intake.messages > 0) post({ type: 'event', name: 'intake-replayed', data: { messages: intake.messages, segments: intake.segments.length } });
}

/**
 * Dead-letters the record the supervisor named (see poison.ts), before anything reads the cache.
 * Returns why it could not, to report once the worker is ready: it drains anyway, and if the record
 * crashes it again the supervisor asks again.
 */
async function deadLetterPoisonedRecord(cache: Cache, cipher: CacheCipher | undefined, poison: { seq: number; reason: string }): Promise<SerializedError | undefined> {
  try {
    // Not cached (it was only in the dead worker's memory): it is gone already, and reported as lost.
    if (!(await deadLetterPoison(cache, cipher, poison.seq, poison.reason))) return undefined;
    stats[Stat.deadLettered]! += 1;
    post({ type: 'event', name: 'dead-letter', data: { seqs: [poison.seq], reason: poison.reason } });
    return undefined;
  } catch (err) {
    return serializeError(err, ErrorCodes.CACHE_WRITE_FAILED);
  }
}

void run();
