/**
 * The worker thread's entry: opens the cache, wires the sender to MQTT.js, and serves the facade's
 * messages. Everything that touches the network or the disk runs here, never on the app thread.
 */
import { workerData } from 'node:worker_threads';
import { ErrorCodes, HoldfastError, serializeError, type SerializedError } from '../errors.js';
import { readCacheKeyFile } from '../cache-key.js';
import { CacheCipher } from './cipher.js';
import { epochOf, Stat, type FromWorker, type ToWorker, type WorkerInit } from '../protocol.js';
import type { Cache } from './cache.js';
import { withBallast } from './ballast.js';
import { ensureCacheDir, openCache } from './cache-open.js';
import type { QuarantineInfo } from '../protocol.js';
import { JournalPolicy } from './durability/journal.js';
import { SpillPolicy } from './durability/spill.js';
import { IntakeSync } from './intake-sync.js';
import { monotonicMs } from './clock.js';
import { Link } from './link.js';
import { DerivedMessageIds } from './message-ids.js';
import { ProgressFile } from './progress-file.js';
import { recoverInFlight } from './recovery.js';
import { OutgoingStore } from './outgoing-store.js';
import { createLogger, logEvent, routeConsoleToLog } from './log.js';
import { OfflineWatch, overdueAfterMs } from './offline-watch.js';
import { Sender } from './sender.js';
import { Subscriber } from './subscriber.js';
import { readIntakeLog, SegmentSweeper, type IntakeReplay } from './intake-replay.js';
import { acquireCacheLock, releaseCacheLock } from './cache-lock.js';
import { deadLetterPoison, type Poison } from './poison.js';
import { installFatalHandlers, reallyExit } from './fatal.js';
import { crashIfArmed, delayRestart, dieBy } from './test-faults.js';
import { initWorkingMark } from './working-mark.js';
import { unsavedAtClose } from '../close-worker.js';

/** How often delivery latencies go to the facade (for the /metrics histogram). */
const LATENCY_REPORT_MS = 1000;

const { options, port, stats: statsBuffer, lockToken, testHooks, stickyFaults, restart } = workerData as WorkerInit;
const stats = new Float64Array(statsBuffer);
initWorkingMark(stats, testHooks ? crashIfArmed : undefined);
if (testHooks) for (const fault of stickyFaults) dieBy(fault);
const log = createLogger(options.logLevel, options.clientId);
routeConsoleToLog(log);
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
  let progress: ProgressFile;
  if (testHooks && restart) await delayRestart(stickyFaults);
  try {
    cacheKey = loadCacheKey();
    cipher = cacheKey ? new CacheCipher(cacheKey) : undefined;
    // Before the cache is touched: a second client must not quarantine or drain this one's cache.
    ensureCacheDir(options.cacheDir);
    withBallast(options.cacheDir, () => acquireCacheLock(options.cacheDir, lockToken));
    ({ cache, quarantined } = openCache(options.cacheDir, options.maxCache, cipher));
    progress = ProgressFile.open(options.cacheDir);
    // A replacement worker reads only what the facade no longer writes, up to what the dead one got.
    const replacing = restart && { replayThrough: restart.replayThrough, before: restart.intakeBefore };
    intake = readIntakeLog(options.cacheDir, { appendedThrough: cache.appendedThrough, progress: progress.current, deadLettered: (seq) => cache.dead.has(seq), cached: (seq) => cache.records.has(seq), ...replacing }, cipher);
    // A fresh cache (after a quarantine) starts at epoch 0: seqs the progress file or the log hold would come again.
    const { floor, pubrel } = progress.current;
    const above = Math.max(epochOf(floor), epochOf(pubrel?.lastSeq ?? 0), intake.highestEpoch);
    // Past MAX_EPOCH the facade's SeqAllocator refuses publish(); the worker still delivers what the cache holds.
    epoch = withBallast(options.cacheDir, () => cache!.reserveEpoch(above));
  } catch (err) {
    // open() fails and lets go; a restart keeps the client's lock while the supervisor tries again.
    if (!restart) releaseCacheLock(options.cacheDir, lockToken);
    post({ type: 'error', error: serializeError(err, ErrorCodes.CACHE_UNAVAILABLE) });
    port.close();
    return;
  }

  const poisonFailure = restart?.poison && (await deadLetterPoisonedRecord(cache, cipher, intake, restart.poison));

  const offline = new OfflineWatch(stats, post, overdueAfterMs(options.timeoutMs));
  let sender: Sender | undefined;
  const store = new OutgoingStore({ completed: (entry) => sender?.dispatcher.completed(entry), pubrec: (entry) => sender?.dispatcher.pubrec(entry) });
  const recovered = recoverInFlight({ progress: progress.current, cache, replayed: intake.batches, epoch, journal: options.durability === 'journal' });
  store.recover(recovered.entries);
  for (const u of recovered.unreadable) {
    post({ type: 'event', name: 'quarantine', data: { movedTo: '(dropped)', reason: `in-flight packet ${u.messageId} (seqs ${u.seqs.join(', ')}) could not be read: ${u.reason}; its readings are sent again from the cache` } });
  }
  const intakeSync = options.durability === 'journal'
    ? new IntakeSync(options.cacheDir, () => sender?.settle(), (err) => post({ type: 'error', error: serializeError(new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `intake log sync failed: ${err.message}`)) }))
    : undefined;
  // The segments replayed at start are synced with the first batch: the run (or worker) that wrote
  // them may have died before syncing, and flush() confirms by syncedThrough, which covers them.
  if (intakeSync) {
    for (const segment of intake.segments) intakeSync.opened(segment.name);
    intakeSync.retired(intake.segments.map((segment) => segment.name));
  }
  const policy = intakeSync ? new JournalPolicy(intakeSync) : new SpillPolicy(intake.batches.length > 0);
  const ids = new DerivedMessageIds();

  const link = new Link(options, store, ids, {
    up: ({ connection, sessionPresent }) => {
      if (stats[Stat.connected] === 0 && link.everConnected) stats[Stat.reconnects]! += 1;
      stats[Stat.connected] = 1;
      post({ type: 'event', name: 'connect', data: { sessionPresent } });
      offline.connected();
      subscriber.connected(sessionPresent);
      sender?.linkUp(connection);
    },
    ready: () => sender?.linkReady(),
    down: (info) => {
      stats[Stat.connected] = 0;
      stats[info.clean ? Stat.cleanDisconnects : Stat.networkDisconnects]! += 1;
      post({ type: 'event', name: 'disconnect', data: { clean: info.clean, reason: info.reason } });
      offline.disconnected(info.reason);
      sender?.linkDown(info.connection, info.reason);
    },
    unreachable: () => sender?.linkUnreachable(),
    error: (info) => post({ type: 'event', name: 'connection-error', data: { ...info } }),
    reconnecting: (delayMs) => post({ type: 'event', name: 'reconnecting', data: { delayMs } }),
    acked: (messageId, cmd, reasonCode) => sender?.dispatcher.acked(messageId, cmd, reasonCode),
    unreadableAck: (reason) => sender?.dispatcher.unreadableAck(reason),
  });
  const subscriber = new Subscriber(link, options.protocolVersion);
  sender = new Sender({ options, policy, cache, progress, ids, store, link, stats, post });
  sender.start(recovered.entries, recovered.legacy);
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
        intakeSync?.received(msg.firstSeq + msg.topics.length - 1);
        sender.onBatch(msg);
        break;
      case 'intakeOpened':
        intakeSync?.opened(msg.name);
        break;
      case 'flush':
        sender.flush(msg.id, msg.upTo);
        break;
      case 'drained':
        sender.whenDrained(msg.id);
        break;
      case 'deadLetters':
        // Reads see the last commit: wait for every write issued so far.
        void cache.settled().then(() => post({ type: 'reply', id: msg.id, value: cache.dead.list() }));
        break;
      case 'requeue':
        void sender.requeue(msg.id, msg.seqs);
        break;
      case 'subscribe':
        subscriber.add(msg.filter, { qos: msg.qos, id: msg.id });
        break;
      case 'unsubscribe':
        subscriber.remove(msg.filter);
        break;
      case 'intakeRetired':
        intakeSync?.retired(msg.segments.map((seg) => seg.name));
        sweeper.add(msg.segments);
        sweeper.sweep(sender.lowestVolatileSeq);
        break;
      case 'reserveEpoch':
        post({ type: 'epoch', epoch: withBallast(options.cacheDir, () => cache.reserveEpoch()) });
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
    // Monotonic: a wall clock that jumps during close() must neither stretch nor collapse the budget.
    const started = performance.now();
    const budget = options.closeTimeoutMs;
    clearInterval(latencyTimer);
    offline.stop();
    try {
      const unsaved = await sender!.stop(monotonicMs() + Math.floor(budget * 0.4));
      if (link.connected) await sender!.settleInflight(Math.floor(budget * 0.4));
      await link.end(Math.max(100, budget - (performance.now() - started) - 500));
      await cache.settled();
      // The facade counts as lost what this thread still holds from here on (see close-worker.ts).
      stats[Stat.safeBelow] = Math.min(sender!.lowestVolatileSeq, stats[Stat.receivedThrough]! + 1);
      sweeper.sweep(sender!.lowestVolatileSeq);
      // lmdb-js never finishes closing after a commit the full disk refused: answer within the budget.
      await Promise.race([cache.close(), new Promise((resolve) => setTimeout(resolve, Math.max(100, budget - (performance.now() - started))).unref())]);
      intakeSync?.close();
      progress.close();
      releaseCacheLock(options.cacheDir, lockToken);
      stats[Stat.connected] = 0;
      // Never a success that hides a loss: readings a full disk would not take are named.
      if (unsaved.length > 0) throw unsavedAtClose(unsaved.map((rec) => rec.seq));
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
async function deadLetterPoisonedRecord(cache: Cache, cipher: CacheCipher | undefined, intake: IntakeReplay, poison: Poison): Promise<SerializedError | undefined> {
  try {
    // Neither cached nor in the intake log (it was only in the dead worker's memory): gone, and reported as lost.
    if (!(await deadLetterPoison(cache, cipher, intake, poison))) return undefined;
    stats[Stat.deadLettered]! += 1;
    post({ type: 'event', name: 'dead-letter', data: { seqs: [poison.seq], reason: poison.reason } });
    return undefined;
  } catch (err) {
    return serializeError(err, ErrorCodes.CACHE_WRITE_FAILED);
  }
}

void run();
