import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { ErrorCodes, HoldfastError } from '../errors.js';
import { isOutOfSpace, withBallast } from './ballast.js';
import { Cache, type CacheLimits } from './cache.js';
import { checkHeader, PROBE_DAMAGED } from './cache-header.js';
import { CACHE_FILE } from './cache-layout.js';
import type { CacheCipher } from './cipher.js';

const LOCK_SUFFIX = '-lock';
const PROBE = fileURLToPath(new URL('./cache-probe.js', import.meta.url));
const PROBE_TIMEOUT_MS = 60_000;

export interface QuarantineReport {
  movedTo: string;
  reason: string;
}

/**
 * Opens (or creates) the cache in `dir`: the directory 0700, its files 0600. A cache that cannot be
 * opened or decoded is renamed aside for forensics (never deleted) and a fresh one is started.
 */
export function openCache(dir: string, limits: CacheLimits, cipher?: CacheCipher): { cache: Cache; quarantined: QuarantineReport | undefined } {
  ensureCacheDir(dir);
  const path = join(dir, CACHE_FILE);
  const problem = probe(path);
  let quarantined: QuarantineReport | undefined;
  if (problem) quarantined = quarantine(path, problem);
  let root: RootDatabase | undefined;
  try {
    root = openRoot(path);
    return { cache: openOnFullDisk(root, dir, limits, cipher), quarantined };
  } catch (err) {
    // A wrong key or another holdfast's format is not damage: report it and leave the cache as it is.
    if (err instanceof HoldfastError && (err.code === ErrorCodes.CACHE_KEY_MISMATCH || err.code === ErrorCodes.CACHE_FORMAT_UNSUPPORTED)) {
      void root?.close();
      throw err;
    }
    // Nor is a disk too full to write the cache's first small records: the probe found the file
    // readable, and moving it aside would strand its backlog (and then fail the same way).
    if (root && !problem && isOutOfSpace(err)) {
      void root.close();
      throw new HoldfastError(ErrorCodes.CACHE_UNAVAILABLE, `cannot open cache ${path}: the disk is full (${(err as Error).message}); nothing was moved aside, open() again once there is room`, {
        cause: err,
        details: { cacheDir: dir },
      });
    }
    if (quarantined || !existsSync(path)) {
      throw new HoldfastError(ErrorCodes.CACHE_UNAVAILABLE, `cannot open cache ${path}: ${(err as Error).message}`, { cause: err });
    }
    void root?.close();
    quarantined = quarantine(path, (err as Error).message);
    return { cache: new Cache(openRoot(path), limits, cipher), quarantined };
  }
}

function openOnFullDisk(root: RootDatabase, dir: string, limits: CacheLimits, cipher: CacheCipher | undefined): Cache {
  return withBallast(dir, () => new Cache(root, limits, cipher));
}

/** Creates the cache directory (0700) if needed. */
export function ensureCacheDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (err) {
    throw new HoldfastError(ErrorCodes.CACHE_UNAVAILABLE, `cannot create cache directory ${dir}: ${(err as Error).message}`, {
      cause: err,
      details: { cacheDir: dir },
    });
  }
}

/** The signals LMDB dies of on a damaged file (it trusts its header and maps past the end). */
const DAMAGE_SIGNALS: ReadonlySet<string> = new Set(['SIGBUS', 'SIGSEGV']);

/**
 * Returns why the cache file is unreadable, or undefined when it is fine (or absent). Only the probe's
 * verdict, or LMDB faulting in it, counts as damage: a probe that could not run (no memory to start a
 * process, an interpreter that cannot exec, a timeout) says nothing about the file, and quarantining a
 * healthy cache would strand its backlog. Then the meta pages are checked here instead.
 */
function probe(path: string): string | undefined {
  if (!existsSync(path) || statSync(path).size === 0) return undefined;
  const result = spawnSync(process.execPath, [PROBE, path], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  if (result.status === 0) return undefined;
  if (result.status === PROBE_DAMAGED) return result.stderr.trim().split('\n').at(-1) || 'the probe found it damaged';
  if (result.signal && DAMAGE_SIGNALS.has(result.signal)) return `reading it killed the probe with ${result.signal}`;
  try {
    checkHeader(path);
    return undefined;
  } catch (err) {
    return `${(err as Error).message} (the probe could not run: ${result.error?.message ?? result.signal ?? `exit ${result.status}`})`;
  }
}

function quarantine(path: string, reason: string): QuarantineReport {
  const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(path, movedTo);
  if (existsSync(path + LOCK_SUFFIX)) renameSync(path + LOCK_SUFFIX, movedTo + LOCK_SUFFIX);
  return { movedTo, reason };
}

function openRoot(path: string): RootDatabase {
  // Every write is an explicit transaction. lmdb-js's event-turn batching also starts an internal
  // commit promise that nobody observes: on a failed commit (disk full) it is an unhandled rejection
  // that would end the worker.
  //
  // remapChunks maps the file in 64 KiB chunks as they are read, rather than as one map of the whole
  // file, and unmaps unreferenced chunks once many are mapped. With a million cached readings the
  // file's resident pages went from 21 MB to 14 MB (bench/README.md). lmdb-js already does this on
  // 32-bit systems, so a Raspberry Pi and a 64-bit gateway now run the same code. The file format is
  // the same either way.
  const root = openLmdb({ path, maxDbs: 8, noSubdir: true, eventTurnBatching: false, remapChunks: true });
  for (const file of [path, path + LOCK_SUFFIX]) if (existsSync(file)) chmodSync(file, 0o600);
  return root;
}
