/**
 * A device's disk: a small tmpfs of its own (root only), which the campaign can fill to the last
 * byte with a ballast file and free again, as a real SD card fills up with logs and is cleaned.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const CHUNK = Buffer.alloc(1 << 20);

export class DeviceDisk {
  #ballasts = 0;
  readonly #live = new Set<string>();

  #removed = false;

  private constructor(
    /** Where the device's files go. */
    readonly path: string,
    /** Whether it is a tmpfs the campaign mounted (only then can it be filled). */
    readonly mounted: boolean,
  ) {}

  /** A tmpfs of `sizeMb` at `dir` when running as root, else a plain directory there. */
  static create(dir: string, sizeMb: number): DeviceDisk {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (process.getuid?.() !== 0) return new DeviceDisk(dir, false);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir]);
    return new DeviceDisk(dir, true);
  }

  /** Writes a ballast file until the disk is full (ENOSPC); returns a function that deletes it. */
  fill(): () => void {
    if (!this.mounted) throw new Error('DeviceDisk.fill: the disk is not a tmpfs the campaign mounted');
    const file = join(this.path, `ballast-${++this.#ballasts}`);
    this.#live.add(file);
    const fd = openSync(file, 'w');
    try {
      for (let size = CHUNK.length; size >= 512; ) {
        try {
          writeSync(fd, CHUNK, 0, size);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          size >>= 1;
        }
      }
    } finally {
      closeSync(fd);
    }
    return () => {
      rmSync(file, { force: true });
      this.#live.delete(file);
    };
  }

  /** Frees every ballast still on the disk. */
  freeAll(): void {
    for (const file of this.#live) rmSync(file, { force: true });
    this.#live.clear();
  }

  /** Unmounts (lazily, in case a killed device still holds a file) and removes the directory. Idempotent. */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    if (this.mounted) execFileSync('umount', ['-l', this.path]);
    rmSync(this.path, { recursive: true, force: true });
  }
}
