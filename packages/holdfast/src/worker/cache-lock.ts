/**
 * One client per cacheDir. Two clients on one cache would drain it twice and fight over its packets,
 * so the first open() writes `holdfast.lock` naming its holder, and every other open() (in this process
 * or another) is refused with HOLDFAST_CACHE_LOCKED while that holder lives.
 *
 * The holder is identified by pid, the kernel's boot id and the process's start time (field 22 of
 * /proc/<pid>/stat): a lock left by a SIGKILLed process or by the previous boot is stale and taken
 * over at once, and a reused pid never passes for the old holder. The token names the client: the
 * supervisor's replacement workers carry it and take the lock over, a second client has another one.
 *
 * Why not a library: proper-lockfile decides staleness by an mtime it rewrites on a timer (flash
 * writes forever, and a restart after a kill waits out the stale period); flock(2) wrappers (fs-ext,
 * fs-native-extensions) are native addons that must build or ship prebuilds for 32-bit ARM devices.
 */
import { closeSync, ftruncateSync, linkSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, HoldfastError } from '../errors.js';
import { isOutOfSpace } from './ballast.js';

export const LOCK_FILE = 'holdfast.lock';
/** Taken (briefly) to replace a stale lock, so two processes cannot both take it over. */
const TAKEOVER_SUFFIX = '.takeover';
const TAKEOVER_TRIES = 50;
/** The lock's name while a takeover in place holds it: holdfast.lock.claimed-<pid>. */
const CLAIMED_INFIX = '.claimed-';

interface Holder {
  pid: number;
  bootId: string;
  startTime: string;
  token: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

const bootId = (): string => readText('/proc/sys/kernel/random/boot_id')?.trim() ?? '';

/** The process start time in clock ticks since boot ('' where /proc is not available). */
function startTimeOf(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function me(token: string): Holder {
  return { pid: process.pid, bootId: bootId(), startTime: startTimeOf(process.pid) ?? '', token };
}

function parse(text: string | undefined): Holder | undefined {
  if (text === undefined) return undefined;
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    if (typeof h.pid === 'number' && typeof h.bootId === 'string' && typeof h.startTime === 'string' && typeof h.token === 'string') return h as Holder;
  } catch {
    // Not a lock we wrote: treated as stale.
  }
  return undefined;
}

/** Whether the process that wrote `holder` still runs (same boot, same pid, same start time). */
function alive(holder: Holder): boolean {
  if (holder.bootId !== bootId()) return false;
  if (holder.startTime !== '') return startTimeOf(holder.pid) === holder.startTime;
  // No /proc: the pid alone (a reused pid would block until it exits).
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What link(2) fails with on a file system without hard links (vfat, exFAT, some FUSE layers). */
const NO_HARD_LINKS: ReadonlySet<string | undefined> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** Creates `path` holding `text`, only if it does not exist (EEXIST otherwise). */
function createExclusive(path: string, text: string): void {
  const temp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try {
    // Inside the try: a write the full disk refuses must not leave the temp file behind.
    writeFileSync(temp, text, { mode: 0o600 });
    // link(2) never replaces, and the lock appears with its content whole (O_EXCL + write would not).
    linkSync(temp, path);
  } catch (err) {
    if (!NO_HARD_LINKS.has((err as NodeJS.ErrnoException).code)) throw err;
    // Without hard links: O_EXCL, then the content (holderOf() waits out the empty instant between).
    writeFileSync(path, text, { flag: 'wx', mode: 0o600 });
  } finally {
    unlinkQuietly(temp);
  }
}

/** The holder a lock file names; one created without link(2) is empty for an instant: read again. */
function holderOf(path: string): Holder | undefined {
  for (let tries = 1; ; tries++) {
    const text = readText(path);
    if (text !== '' || tries === 5) return parse(text);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

function locked(dir: string, holder: Holder): HoldfastError {
  const who = holder.pid === process.pid ? `another client in this process (pid ${holder.pid})` : `process ${holder.pid}`;
  return new HoldfastError(ErrorCodes.CACHE_LOCKED, `cacheDir ${dir} is in use by ${who}: one client per cache directory`, {
    details: { cacheDir: dir, pid: holder.pid },
  });
}

/**
 * A takeover in place cut short (SIGKILL, power cut) between its claim and putting the lock back
 * leaves the lock under its claimed name: put back, so it can be taken over again (on a still-full
 * disk there would be no lock to take over, and no room for a new one).
 */
function restoreClaimed(dir: string, path: string): void {
  if (readText(path) !== undefined) return;
  for (const name of readdirSync(dir)) {
    const pid = name.startsWith(LOCK_FILE + CLAIMED_INFIX) ? Number(name.slice((LOCK_FILE + CLAIMED_INFIX).length)) : NaN;
    if (!Number.isInteger(pid) || pid === process.pid || pidAlive(pid)) continue;
    try {
      linkSync(join(dir, name), path);
    } catch {
      // A lock exists again, or this file system has no hard links: nothing to restore.
    }
    unlinkQuietly(join(dir, name));
    return;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock for the client `token`, or throws HOLDFAST_CACHE_LOCKED naming the live holder. */
export function acquireCacheLock(dir: string, token: string): void {
  const path = join(dir, LOCK_FILE);
  restoreClaimed(dir, path);
  // Already this client's (a replacement worker): nothing to write, not even on a full disk.
  if (holderOf(path)?.token === token) return;
  const mine = JSON.stringify(me(token));
  try {
    createExclusive(path, mine);
    return;
  } catch (err) {
    // A full disk refuses the new file before link(2) could say EEXIST: a lock that is there is taken over below.
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST' || (isOutOfSpace(err) && readText(path) !== undefined);
    if (!exists) throw unavailable(dir, err);
  }
  const holder = holderOf(path);
  if (holder && alive(holder)) throw locked(dir, holder);
  try {
    withTakeover(path, () => {
      // Read again under the takeover lock: another process may have replaced the stale lock already.
      const current = holderOf(path);
      if (current && current.token !== token && alive(current)) throw locked(dir, current);
      const temp = `${path}.${process.pid}.new`;
      try {
        writeFileSync(temp, mine, { mode: 0o600 });
        renameSync(temp, path);
      } catch (err) {
        unlinkQuietly(temp);
        throw unavailable(path, err);
      }
    });
  } catch (err) {
    if (!(err instanceof HoldfastError && err.code === ErrorCodes.CACHE_UNAVAILABLE && isOutOfSpace(err.cause))) throw err;
    takeOverInPlace(dir, path, mine, token);
  }
}

/**
 * A stale lock on a disk too full for the takeover's new files (a device killed during a disk-full
 * episode, its ballast spent): claimed by renaming it (atomic, so one process wins), rewritten in the
 * space it already has, and put back with link(2), which fails if another client made a lock meanwhile.
 * Without it the device could not start, and its backlog not drain, until something freed space.
 */
function takeOverInPlace(dir: string, path: string, mine: string, token: string): void {
  const claimed = `${path}${CLAIMED_INFIX}${process.pid}`;
  // Only where link(2) can put the lock back without replacing one made meanwhile: elsewhere (vfat)
  // a rename back could clobber another client's lock, so the device waits for space instead.
  const probe = `${path}.link-probe-${process.pid}`;
  try {
    linkSync(path, probe);
    unlinkQuietly(probe);
  } catch (err) {
    throw unavailable(dir, err);
  }
  try {
    renameSync(path, claimed);
  } catch (err) {
    // ENOENT: another process claimed it first.
    throw unavailable(dir, err);
  }
  const putBack = (): void => {
    try {
      linkSync(claimed, path);
    } catch {
      // Someone made a new lock meanwhile: theirs stands.
    }
    unlinkQuietly(claimed);
  };
  const holder = holderOf(claimed);
  if (holder && holder.token !== token && alive(holder)) {
    putBack();
    throw locked(dir, holder);
  }
  try {
    const fd = openSync(claimed, 'r+');
    try {
      writeSync(fd, mine, 0);
      ftruncateSync(fd, Buffer.byteLength(mine));
    } finally {
      closeSync(fd);
    }
    linkSync(claimed, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    unlinkQuietly(claimed);
    if (code === 'EEXIST') {
      const current = holderOf(path);
      if (current && alive(current)) throw locked(dir, current);
    }
    throw unavailable(dir, err);
  }
  unlinkQuietly(claimed);
}

function withTakeover(path: string, replace: () => void): void {
  const takeover = path + TAKEOVER_SUFFIX;
  const mine = JSON.stringify(me(''));
  for (let i = 0; i < TAKEOVER_TRIES; i++) {
    try {
      createExclusive(takeover, mine);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw unavailable(path, err);
      // Held for microseconds; one left by a process killed meanwhile is stale.
      const holder = holderOf(takeover);
      if (!holder || !alive(holder)) unlinkQuietly(takeover);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      continue;
    }
    try {
      replace();
    } finally {
      unlinkQuietly(takeover);
    }
    return;
  }
  throw unavailable(path, new Error('the lock takeover file stayed held'));
}

/** Removes the lock if `token` still holds it (a graceful close, or the facade after a dead worker). */
export function releaseCacheLock(dir: string, token: string): void {
  const path = join(dir, LOCK_FILE);
  if (holderOf(path)?.token === token) unlinkQuietly(path);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function unavailable(dir: string, cause: unknown): HoldfastError {
  return new HoldfastError(ErrorCodes.CACHE_UNAVAILABLE, `cannot lock cache directory ${dir}: ${(cause as Error).message}`, { cause, details: { cacheDir: dir } });
}
