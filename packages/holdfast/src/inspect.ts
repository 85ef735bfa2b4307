import type { DeadLetter } from './protocol.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Database, RootDatabase } from 'lmdb';
import { ErrorCodes, HoldfastError } from './errors.js';
import { CACHE_FILE, keyPriority, keySeq, recordsBySeq, RECORDS_DB, type RecordsDb } from './worker/cache-layout.js';
import { checkFormat } from './worker/cache.js';
import { checkHeader } from './worker/cache-header.js';
import { decodeRecord, openValue } from './worker/record.js';
import { CacheCipher, keyCheckMatches } from './worker/cipher.js';
import { readCacheKeyFile } from './cache-key.js';
import { INTAKE_SEGMENT } from './intake-format.js';
import { isDone, readProgress } from './worker/progress-file.js';
import { parseCacheKey } from './options.js';

/** How to read an encrypted cache: its key, or the file that holds it (one or the other). */
export interface InspectOptions {
  /** 32 bytes: a Buffer, 64 hex characters or base64. @default undefined */
  cacheKey?: string | Buffer;
  /** A file holding the key (hex, base64 or 32 raw bytes). @default undefined */
  cacheKeyFile?: string;
}

/** What `holdfast cache inspect` shows. Records are read from one snapshot, so safe while a publisher writes. */
export interface CacheInspection {
  path: string;
  messages: number;
  bytes: number;
  /** Wall-clock age of the oldest cached message (0 when empty, never negative after a clock jump). */
  oldestAgeMs: number;
  /** Cached messages per priority, 1 (lowest) to 10. */
  byPriority: Record<number, number>;
  deadLetters: number;
  /** The last seq epoch reserved (one per open()). */
  epoch: number;
  /** Corrupt caches renamed aside by earlier runs, oldest first (file names inside the cache dir). */
  quarantined: string[];
  /**
   * Journal mode's intake log segments in the directory. Segments are deleted once committed, so any
   * left after a publisher stopped hold readings its next start replays into the cache.
   */
  intakeLog: { segments: number; bytes: number };
}

export interface CachedMessage {
  seq: number;
  topic: string;
  payload: string | Uint8Array;
  priority: number;
  /** Wall-clock ms at publish() (informational). */
  ts: number;
}

/** A message the broker refused, kept with its reason: the same shape the client's deadLetters() gives. */
export type CachedDeadLetter = DeadLetter;

interface ReadOnlyCache {
  cipher: CacheCipher | undefined;
  root: RootDatabase;
  records: RecordsDb;
  meta: Database<unknown, string>;
  dead: Database<CachedDeadLetter, number>;
}

function unavailable(message: string, path: string, cause?: unknown): HoldfastError {
  return new HoldfastError(ErrorCodes.CACHE_UNAVAILABLE, message, { cause, details: { cachePath: path } });
}

/**
 * Opens the cache read-only. LMDB readers never block the publisher's writer and see one consistent
 * snapshot per read transaction, so this is safe while a publisher holds the cache.
 */
async function openReadOnly(dir: string, options: InspectOptions): Promise<ReadOnlyCache> {
  const path = join(dir, CACHE_FILE);
  if (!existsSync(path)) {
    throw unavailable(`no holdfast cache at ${path} (is the cache directory right? a publisher creates it on first start)`, path);
  }
  try {
    checkHeader(path);
  } catch (err) {
    throw unavailable(`the cache ${path} is corrupt: ${(err as Error).message}. A publisher will quarantine it on its next start`, path, err);
  }
  const cipher = loadCipher(options);
  // lmdb is loaded on first use: importing holdfast on the app thread does not load it.
  const { open: openLmdb } = await import('lmdb');
  let root: RootDatabase | undefined;
  let cache: ReadOnlyCache;
  try {
    root = openLmdb({ path, maxDbs: 8, noSubdir: true, readOnly: true });
    cache = {
      cipher,
      root,
      records: root.openDB<Buffer, Buffer>({ name: RECORDS_DB, encoding: 'binary', keyEncoding: 'binary' }),
      meta: root.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' }),
      dead: root.openDB<CachedDeadLetter, number>({ name: 'dead', encoding: 'msgpack' }),
    };
  } catch (err) {
    void root?.close();
    throw unavailable(`cannot read the cache ${path}: ${(err as Error).message}`, path, err);
  }
  try {
    checkFormat(cache.meta.get('format'));
    checkKey(cache);
  } catch (err) {
    void root.close();
    throw err;
  }
  return cache;
}

function loadCipher(options: InspectOptions): CacheCipher | undefined {
  if (options.cacheKey !== undefined && options.cacheKeyFile !== undefined) {
    throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, 'give cacheKey or cacheKeyFile, not both', { details: { field: 'cacheKeyFile' } });
  }
  if (options.cacheKeyFile !== undefined) return new CacheCipher(readCacheKeyFile(options.cacheKeyFile));
  if (options.cacheKey === undefined) return undefined;
  const key = parseCacheKey(options.cacheKey);
  if (!key) throw new HoldfastError(ErrorCodes.INVALID_ARGUMENT, 'cacheKey must be a 32-byte key: a Buffer, 64 hex characters or base64', { details: { field: 'cacheKey' } });
  return new CacheCipher(key);
}

/** The same check the publisher makes: an encrypted cache needs its key, and only that key. */
function checkKey(cache: ReadOnlyCache): void {
  const check = cache.meta.get('keyCheck') as Uint8Array | undefined;
  if (check !== undefined && !keyCheckMatches(check, cache.cipher)) {
    throw new HoldfastError(
      ErrorCodes.CACHE_KEY_MISMATCH,
      cache.cipher ? 'the cache was encrypted with a different key' : 'the cache is encrypted: give its key (cacheKeyFile, or --cache-key-file on the command line)',
    );
  }
}

/** Journal mode's intake log segments waiting in `dir` (none once everything is committed). */
function intakeLogFiles(dir: string): { segments: number; bytes: number } {
  let segments = 0;
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    if (!INTAKE_SEGMENT.test(name)) continue;
    segments++;
    bytes += statSync(join(dir, name)).size;
  }
  return { segments, bytes };
}

/**
 * Corrupt caches that Cache.open() renamed aside (`cache.mdb.corrupt-<iso>`, without their lock files),
 * and damaged intake log segments set aside once their readable readings were committed
 * (`intake-….log.corrupt-<iso>`).
 */
export function quarantinedFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const prefix = `${CACHE_FILE}.corrupt-`;
  return readdirSync(dir)
    .filter((name) => (name.startsWith(prefix) && !name.endsWith('-lock')) || /^intake-.*\.log\.corrupt-/.test(name))
    .sort();
}

function toMessage(seq: number, bytes: Uint8Array, cipher: CacheCipher | undefined): CachedMessage {
  const rec = decodeRecord(seq, bytes, cipher);
  return { seq, topic: rec.topic, payload: rec.payload, priority: rec.priority, ts: rec.ts };
}

/** Summarizes the cache in `dir` without modifying it. Missing or corrupt → HoldfastError(CACHE_UNAVAILABLE). */
export async function inspectCache(dir: string, options: InspectOptions = {}): Promise<CacheInspection> {
  const quarantined = quarantinedFiles(dir);
  const cache = await openReadOnly(dir, options);
  try {
    const byPriority: Record<number, number> = {};
    for (let p = 1; p <= 10; p++) byPriority[p] = 0;
    let messages = 0;
    let bytes = 0;
    let oldestTs = 0;
    // Counted from the records themselves, so the report is right even if the totals were not; what
    // the progress file says is delivered is not counted (it leaves the cache in batches).
    const progress = readProgress(dir);
    for (const { key, value } of cache.records.getRange({ snapshot: true })) {
      if (isDone(progress, keySeq(key))) continue;
      const rec = decodeRecord(keySeq(key), value, cache.cipher);
      messages++;
      bytes += rec.size;
      const priority = keyPriority(key);
      if (priority >= 1 && priority <= 10) byPriority[priority]! += 1;
    }
    // Key order is by priority first: the oldest record is the first in publish order.
    for (const { key, value } of recordsBySeq(cache.records, { snapshot: true })) {
      if (isDone(progress, keySeq(key))) continue;
      oldestTs = decodeRecord(keySeq(key), value, cache.cipher).ts;
      break;
    }
    const epoch = cache.meta.get('epoch');
    return {
      path: join(dir, CACHE_FILE),
      messages,
      bytes,
      oldestAgeMs: messages > 0 && oldestTs > 0 ? Math.max(0, Date.now() - oldestTs) : 0,
      byPriority,
      deadLetters: cache.dead.getCount(),
      epoch: typeof epoch === 'number' ? epoch : 0,
      quarantined,
      intakeLog: intakeLogFiles(dir),
    };
  } catch (err) {
    if (err instanceof HoldfastError) throw err;
    throw unavailable(`cannot read the cache in ${dir}: ${(err as Error).message}`, join(dir, CACHE_FILE), err);
  } finally {
    await cache.root.close();
  }
}

/** Every cached message, oldest first, from one read snapshot. The cache is closed when iteration ends. */
export async function* exportCache(dir: string, options: InspectOptions = {}): AsyncGenerator<CachedMessage> {
  const cache = await openReadOnly(dir, options);
  const progress = readProgress(dir);
  try {
    for (const { key, value } of recordsBySeq(cache.records, { snapshot: true })) {
      if (!isDone(progress, keySeq(key))) yield toMessage(keySeq(key), value, cache.cipher);
    }
  } finally {
    await cache.root.close();
  }
}

/** Every dead letter (messages the broker refused), in seq order, with the broker's reason. */
export async function* exportDeadLetters(dir: string, options: InspectOptions = {}): AsyncGenerator<CachedDeadLetter> {
  const cache = await openReadOnly(dir, options);
  try {
    for (const { value } of cache.dead.getRange({ snapshot: true })) {
      const stored = value as CachedDeadLetter & { sealed?: Uint8Array };
      const [topic, payload] = stored.sealed ? (openValue(stored.sealed, cache.cipher) as [string, Uint8Array]) : [stored.topic, stored.payload];
      const { seq, priority, ts, reason } = stored;
      yield { seq, topic, payload: Buffer.from(payload), priority, ts, reason };
    }
  } finally {
    await cache.root.close();
  }
}
