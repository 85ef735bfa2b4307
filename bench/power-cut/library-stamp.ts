/**
 * A fingerprint of the built holdfast library the device processes load. Several people rebuild the
 * shared tree; a rebuild in the middle of a run would give device lives different code (and maybe a
 * different cache format), so the bench checks the stamp before and after and refuses to vouch for a
 * run where it changed. The hash is over contents, so a rebuild that produces the same code is harmless.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LibraryStamp {
  /** sha256 (12 hex) over every built .js file's name and contents. */
  hash: string;
  /** When the newest built file was written, ISO. */
  builtAt: string;
}

export function libraryStamp(): LibraryStamp {
  const dist = dirname(fileURLToPath(import.meta.resolve('holdfast')));
  const hash = createHash('sha256');
  let newest = 0;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.js')) {
        hash.update(`${relative(dist, path)}\0`).update(readFileSync(path));
        newest = Math.max(newest, statSync(path).mtimeMs);
      }
    }
  };
  walk(dist);
  return { hash: hash.digest('hex').slice(0, 12), builtAt: new Date(newest).toISOString() };
}
