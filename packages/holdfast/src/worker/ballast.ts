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
