/**
 * The worker thread's entry: opens the cache, wires the sender to MQTT.js, and serves the facade's
 * messages. Everything that touches the network or the disk runs here, never on the app thread.
 */
import { workerData } from 'node:worker_threads';
import { ErrorCodes, HoldfastError, serializeError } from '../errors.js';
import { readCacheKeyFile } from '../cache-key.js';
import { CacheCipher } from './cipher.js';
import { Stat, type FromWorker, type ToWorker, type WorkerInit } from '../protocol.js';
import type { Cache } from './cache.js';
import { openCache } from './cache-open.js';
import type { QuarantineInfo } from '../protocol.js';
import { JournalPolicy } from './durability/journal.js';
import { SpillPolicy } from './durability/spill.js';
import { IntakeSync } from './intake-sync.js';
import { monotonicMs } from './clock.js';
import type { Rec } from './record.js';
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

/** How often delivery latencies go to the facade (for the /metrics histogram). */
const LATENCY_REPORT_MS = 1000;

const { options, port, stats: statsBuffer } = workerData as WorkerInit;
const stats = new Float64Array(statsBuffer);
const log = createLogger(options.logLevel, options.clientId);
routeConsoleToLog(log);
const post = (msg: FromWorker, transfer?: ArrayBuffer[]): void => {
  if (msg.type === 'event') logEvent(log, msg.name, msg.data);
  else if (msg.type === 'error') log.error({ code: msg.error.code }, msg.error.message);
  port.postMessage(msg, transfer);
};

/** The cacheKey, or the key file read here (the worker, so the app thread does no disk I/O). */
function loadCacheKey(): Buffer | undefined {
  if (options.cacheKey) return Buffer.from(options.cacheKey);
  return options.cacheKeyFile ? readCacheKeyFile(options.cacheKeyFile, 'cacheKeyFile', 'options.cacheKeyFile') : undefined;
}

function unsavedError(unsaved: readonly Rec[]): HoldfastError {
  const first = unsaved[0]!.seq;
  const last = unsaved[unsaved.length - 1]!.seq;
  return new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `close(): ${unsaved.length} readings (seqs ${first} to ${last}) waited for disk space to the end and are lost`, {
    details: { count: unsaved.length, firstSeq: first, lastSeq: last },
  });
}

function run(): void {
  let cache: Cache;
  let quarantined: QuarantineInfo | undefined;
  let epoch: number;
  let cacheKey: Buffer | undefined;
  let intake: IntakeReplay;
  let progress: ProgressFile;
  try {
    cacheKey = loadCacheKey();
    const cipher = cacheKey ? new CacheCipher(cacheKey) : undefined;
    ({ cache, quarantined } = openCache(options.cacheDir, options.maxCache, cipher));
    progress = ProgressFile.open(options.cacheDir);
    intake = readIntakeLog(options.cacheDir, { appendedThrough: cache.appendedThrough, progress: progress.current, deadLettered: (seq) => cache.dead.has(seq) }, cipher);
    epoch = cache.reserveEpoch();
  } catch (err) {
    post({ type: 'error', error: serializeError(err, ErrorCodes.CACHE_UNAVAILABLE) });
    port.close();
    return;
  }

  const offline = new OfflineWatch(stats, post, overdueAfterMs(options.timeoutMs));
  let sender: Sender | undefined;
  const store = new OutgoingStore({ completed: (entry) => sender?.onCompleted(entry), pubrec: (entry) => sender?.pubrec(entry) });
  const recovered = recoverInFlight({ progress: progress.current, cache, replayed: intake.batches, epoch, journal: options.durability === 'journal' });
  store.recover(recovered.entries);
  for (const u of recovered.unreadable) {
    post({ type: 'event', name: 'quarantine', data: { movedTo: '(dropped)', reason: `in-flight packet ${u.messageId} (seqs ${u.seqs.join(', ')}) could not be read: ${u.reason}; its readings are sent again from the cache` } });
  }
  const intakeSync = options.durability === 'journal'
    ? new IntakeSync(options.cacheDir, () => sender?.settle(), (err) => post({ type: 'error', error: serializeError(new HoldfastError(ErrorCodes.CACHE_WRITE_FAILED, `intake log sync failed: ${err.message}`)) }))
    : undefined;
  const policy = intakeSync ? new JournalPolicy(intakeSync) : new SpillPolicy();
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
    acked: (messageId, cmd, reasonCode) => sender?.acked(messageId, cmd, reasonCode),
    unreadableAck: (reason) => sender?.unreadableAck(reason),
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
  }, LATENCY_REPORT_MS);
  latencyTimer.unref();

  let closing = false;
  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'publish':
        if (closing) break;
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
        post({ type: 'epoch', epoch: cache.reserveEpoch() });
        break;
      case 'close':
        if (closing) break;
        closing = true;
        void shutdown(msg.id);
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
      sweeper.sweep(sender!.lowestVolatileSeq);
      await cache.close();
      intakeSync?.close();
      progress.close();
      stats[Stat.connected] = 0;
      // Never a success that hides a loss: readings a full disk would not take are named.
      if (unsaved.length > 0) throw unsavedError(unsaved);
      post({ type: 'reply', id });
    } catch (err) {
      post({ type: 'reply', id, error: serializeError(err) });
    } finally {
      post({ type: 'closed' });
      port.close();
      log.flush();
      // LMDB and MQTT.js handles are closed; end the thread even if a stray timer lingers.
      setImmediate(() => process.exit(0));
    }
  }

  const journalKey = options.durability === 'journal' && cacheKey ? new Uint8Array(cacheKey) : undefined;
  post({ type: 'ready', epoch, quarantined, cacheKey: journalKey });
  if (quarantined) logEvent(log, 'quarantine', { ...quarantined });
  for (const info of intake.quarantined) post({ type: 'event', name: 'quarantine', data: { ...info } });
  if (intake.messages > 0) post({ type: 'event', name: 'intake-replayed', data: { messages: intake.messages, segments: intake.segments.length } });
}

run();
