import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Space held back for the moment the disk fills: enough for LMDB to delete and evict. */
export const BALLAST_BYTES = 256 * 1024;
const BALLAST_FILE = 'ballast';

/**
 * A file of reserved space in the cache directory. LMDB copies pages on write, so on a completely full
 * disk even deleting a record fails, and the cache could never make room by evicting. Releasing the
 * ballast at the first write failure gives LMDB the pages it needs to evict; it is put back once writes
 * succeed again.
 */
export class Ballast {
  readonly #path: string;

  constructor(dir: string) {
    this.#path = join(dir, BALLAST_FILE);
  }

  /** Creates the reserve if it is missing; a disk too full for it is not an error. */
  restore(): void {
    if (existsSync(this.#path)) return;
    try {
      writeFileSync(this.#path, Buffer.alloc(BALLAST_BYTES), { mode: 0o600 });
    } catch {
      try {
        unlinkSync(this.#path);
      } catch {
        // Nothing was written.
      }
    }
  }

  /** Frees the reserved space; returns whether there was any to free. */
  release(): boolean {
    try {
      unlinkSync(this.#path);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Opening writes a few small records (the lock, the format, the totals, the epoch). On a full disk the
 * ballast the last run kept is let go for them, as a full disk lets it go for eviction, so a
 * device with a backlog starts and can send it; the sender puts the ballast back once there is room.
 */
export function withBallast<T>(dir: string, write: () => T): T {
  try {
    return write();
  } catch (err) {
    if (!isOutOfSpace(err) || !new Ballast(dir).release()) throw err;
    return write();
  }
}

/** The errors LMDB gives for a write the disk refused: ENOSPC, EDQUOT, or EIO (a full tmpfs or SD card). */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 5 || code === 28 || code === 122 || code === 'EIO' || code === 'ENOSPC' || code === 'EDQUOT' || /no space left|input\/output error|quota/i.test((err as Error).message ?? '');
}
