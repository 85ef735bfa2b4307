import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { atParentExit, trackChild } from './children.js';
import { nativeBuild, runs, type NativeTarget } from './native-build.js';

/*
 * A real power cut, not only a SIGKILL: the kernel's page cache goes too. The layer is a FUSE file
 * system (native/powerloss-fs/) that keeps every write since the last fsync in its own memory and
 * passes only synced data and committed names down to a backing directory, the "disk". A cut kills
 * the layer (its memory is the page cache that is lost), detaches the mount (the kernel's cached pages
 * of it go with it) and mounts the disk again. The model is described in packages/testkit/README.md.
 */

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const STDERR_KEEP = 16 * 1024;
const LAYER: NativeTarget = { name: 'powerloss-fs', kind: 'program', packages: ['fuse3'] };

/** Counters of the running layer, since it was (re)mounted. */
export interface PowerLossStats {
  writes: number;
  bytesWritten: number;
  /** fsync/fdatasync calls on files (msync(MS_SYNC) and O_SYNC/O_DSYNC writes arrive as these). */
  fsyncs: number;
  fsyncdirs: number;
  /** Bytes written to the disk by syncs. */
  syncedBytes: number;
  committedOps: number;
  /** Name operations (create, rename, unlink, ...) not yet durable: a cut undoes them. */
  pendingOps: number;
  /** Written but not yet synced (whole 4 KiB pages): a cut drops them. */
  unsyncedBytes: number;
  /** The layer could not apply something to the disk (see its stderr). */
  failed: boolean;
}

export interface PowerLossLayerOptions {
  /** Directory for the disk (`<dir>/disk`) and the mount (`<dir>/mnt`). Default: a new temp dir, removed by close(). */
  dir?: string;
}

export interface PowerLossLayer {
  /** The mount point: put the files under test here. */
  readonly path: string;
  /** The disk: what survived so far (only synced data and committed names). Read it, never write it. */
  readonly disk: string;
  /** Power cuts so far. */
  readonly cuts: number;
  /**
   * Environment for processes started after a cut, standing in for the new boot a real power cut
   * brings (the boot id does not change here): lmdb-js then opens only the newest fully flushed commit.
   */
  readonly afterBootEnv: Readonly<Record<string, string>>;
  stats(): PowerLossStats;
  /**
   * The power cut: drops everything not synced and mounts what survived again. Every process using
   * the mount must be dead first (SIGKILL it: it lost power too). Resolves with the counters the
   * layer had at the cut.
   */
  powerCut(): Promise<PowerLossStats>;
  /** A clean shutdown: the layer syncs what it holds, unmounts, and the temp dir (if ours) is removed. */
  close(): Promise<void>;
}

/** Why the layer cannot run here (no Linux, no /dev/fuse, no compiler or libfuse3), or undefined. */
export function powerLossUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'the power-loss layer needs Linux (FUSE)';
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return 'the power-loss layer needs /dev/fuse, readable and writable (run as root; in a container pass --device /dev/fuse --cap-add SYS_ADMIN)';
  }
  if (!runs('fusermount3', ['-V']) && !runs('umount', ['-V'])) return 'the power-loss layer needs fusermount3 or umount to detach its mount (apt-get install fuse3)';
  const build = nativeBuild(LAYER);
  if (!build.ok) return `the power-loss layer cannot be built: ${build.reason} (on Debian: apt-get install gcc pkg-config libfuse3-dev fuse3)`;
  return undefined;
}

export async function startPowerLossLayer(options: PowerLossLayerOptions = {}): Promise<PowerLossLayer> {
  const why = powerLossUnavailable();
  if (why !== undefined) throw new Error(why);
  const build = nativeBuild(LAYER);
  if (!build.ok) throw new Error(build.reason);
  const ours = options.dir === undefined;
  const base = resolve(options.dir ?? mkdtempSync(join(tmpdir(), 'holdfast-powerloss-')));
  const disk = join(base, 'disk');
  const mount = join(base, 'mnt');
  mkdirSync(disk, { recursive: true, mode: 0o700 });
  mkdirSync(mount, { recursive: true, mode: 0o700 });
  const cancelCleanup = atParentExit(() => {
    detach(mount);
    if (ours) rmSync(base, { recursive: true, force: true });
  });

  let daemon = await mountLayer(build.path, disk, mount);
  let cuts = 0;
  const stats = (): PowerLossStats => JSON.parse(readFileSync(join(mount, '.powerloss'), 'utf8')) as PowerLossStats;

  return {
    path: mount,
    disk,
    get cuts() {
      return cuts;
    },
    afterBootEnv: { LMDB_RESTORE: 'safe' },
    stats,
    async powerCut() {
      const before = stats();
      // The disk no longer matches the model: whatever follows would prove nothing.
      if (before.failed) throw new Error(`powerloss-fs could not apply a sync to its disk: ${daemon.stderr()}`);
      await daemon.kill('SIGKILL');
      detach(mount);
      cuts++;
      daemon = await mountLayer(build.path, disk, mount);
      return before;
    },
    async close() {
      cancelCleanup();
      const exit = await daemon.kill('SIGTERM', STOP_TIMEOUT_MS);
      if (exit.signal === 'SIGKILL' || exit.code !== 0) process.stderr.write(`powerloss-fs did not stop cleanly (${JSON.stringify(exit)}): ${daemon.stderr()}\n`);
      // Normally the layer unmounted itself; after a forced kill the mount is still there.
      detach(mount);
      if (ours) rmSync(base, { recursive: true, force: true });
    },
  };
}

interface Daemon {
  kill(signal: NodeJS.Signals, graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

async function mountLayer(binary: string, disk: string, mount: string): Promise<Daemon> {
  const child: ChildProcess = spawn(binary, [disk, mount], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  await new Promise<void>((ready, fail) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`powerloss-fs did not mount ${mount} within ${READY_TIMEOUT_MS} ms: ${stderr}`));
    }, READY_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      if (!out.includes('ready\n')) return;
      clearTimeout(timer);
      ready();
    });
    void exited.then((exit) => {
      clearTimeout(timer);
      fail(new Error(`powerloss-fs exited (${JSON.stringify(exit)}) before mounting ${mount}: ${stderr}`));
    });
  });
  // The layer must not keep the test process alive (the exit hook kills it), except while we wait for it.
  const setRef = (ref: boolean): void => {
    for (const handle of [child, child.stdout as Socket, child.stderr as Socket]) {
      if (ref) handle.ref();
      else handle.unref();
    }
  };
  setRef(false);
  return {
    async kill(signal, graceMs) {
      setRef(true);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = graceMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
    stderr: () => stderr,
  };
}

/** Detaches the mount even if the layer is dead (its requests then fail with ENOTCONN). */
function detach(mount: string): void {
  if (!isMounted(mount)) return;
  if (runs('fusermount3', ['-u', '-z', mount])) return;
  spawnSync('umount', ['-l', mount], { stdio: 'ignore' });
}

function isMounted(mount: string): boolean {
  try {
    // Field 5 of each line is the mount point (spaces escaped as \040).
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4]?.replace(/\\040/g, ' ') === mount);
  } catch {
    return false;
  }
}
