import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atParentExit } from './children.js';
import { nativeBuild, type NativeBuild } from './native-build.js';

/*
 * Slow flash for a child process: native/slow-fsync.c, loaded with LD_PRELOAD, delays every durable
 * write (fsync, fdatasync, msync(MS_SYNC), sync_file_range, syncfs, and writes to O_DSYNC descriptors)
 * by a fixed latency, as an SD card would, and counts them in a shared file that outlives a SIGKILL.
 */

export interface SyncCounts {
  fsync: number;
  fdatasync: number;
  /** msync with MS_SYNC (LMDB with writeMap). */
  msync: number;
  syncFileRange: number;
  /** syncfs and sync. */
  syncfs: number;
  /** Writes to a descriptor opened with O_DSYNC or O_SYNC (LMDB's meta page): each waits for the storage like an fdatasync. */
  dsyncWrites: number;
  /** Every durable operation above. */
  total: number;
  /** Time spent in the injected delay, in ms, summed over threads. */
  delayedMs: number;
  /** Time the real calls above took (the storage's own latency), in ms, summed over threads. */
  syncMs: number;
}

export const SLOW_FSYNC_MS_ENV = 'HOLDFAST_SLOW_FSYNC_MS';
export const SLOW_FSYNC_COUNTS_ENV = 'HOLDFAST_SLOW_FSYNC_COUNTS';
// The counters file: little-endian uint64 in the order of the shim's enum.
const SLOTS = 8;

export interface SlowFsync {
  /** The child's environment additions: LD_PRELOAD, the latency, the counters file, no io_uring. */
  readonly env: Record<string, string>;
  /** The counts so far, across every thread and child process that loaded the shim with this env. */
  counts(): SyncCounts;
  /** Removes the counters file (otherwise removed when this process exits). */
  remove(): void;
}

/** Whether the shim can be used here: builds it if needed, or says what is missing. */
export function slowFsyncShim(): NativeBuild {
  const build = nativeBuild({ name: 'slow-fsync', kind: 'shared-object' });
  return build.ok ? build : { ok: false, reason: `${build.reason} (on Debian: apt-get install gcc)` };
}

/**
 * Sets up the shim for one child process with `delayMs` per durable write (0: count only).
 * `preload` is the LD_PRELOAD the child would otherwise get; the shim goes first.
 */
export function slowFsync(delayMs: number, preload = process.env.LD_PRELOAD): SlowFsync {
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new RangeError(`slowFsync: delayMs must be a number ≥ 0; got ${delayMs}`);
  const shim = slowFsyncShim();
  if (!shim.ok) throw new Error(`slow-fsync shim unavailable: ${shim.reason}`);
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-slow-fsync-'));
  const file = join(dir, 'counts');
  writeFileSync(file, Buffer.alloc(SLOTS * 8), { mode: 0o600 });
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  const cancel = atParentExit(remove);
  return {
    env: {
      LD_PRELOAD: preload ? `${shim.path}:${preload}` : shim.path,
      [SLOW_FSYNC_MS_ENV]: String(delayMs),
      [SLOW_FSYNC_COUNTS_ENV]: file,
      // libuv could otherwise submit fsync and writes through io_uring, which no LD_PRELOAD shim sees.
      UV_USE_IO_URING: '0',
    },
    counts: () => readSyncCounts(file),
    remove: () => {
      cancel();
      remove();
    },
  };
}

/** Reads a counters file; by default this process's own, when it runs under the shim. */
export function readSyncCounts(file = process.env[SLOW_FSYNC_COUNTS_ENV]): SyncCounts {
  if (file === undefined) throw new Error(`readSyncCounts: ${SLOW_FSYNC_COUNTS_ENV} is not set; this process does not run under the slow-fsync shim`);
  const bytes = readFileSync(file);
  const slot = (i: number): number => (bytes.length >= (i + 1) * 8 ? Number(bytes.readBigUInt64LE(i * 8)) : 0);
  const counts = { fsync: slot(0), fdatasync: slot(1), msync: slot(2), syncFileRange: slot(3), syncfs: slot(4), dsyncWrites: slot(5) };
  const total = counts.fsync + counts.fdatasync + counts.msync + counts.syncFileRange + counts.syncfs + counts.dsyncWrites;
  return { ...counts, total, delayedMs: slot(6) / 1e6, syncMs: slot(7) / 1e6 };
}
