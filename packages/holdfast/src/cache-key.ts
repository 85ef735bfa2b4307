import { readFileSync } from 'node:fs';
import { ErrorCodes, HoldfastError } from './errors.js';
import { parseCacheKey } from './options.js';

/**
 * Reads a cacheKeyFile: 64 hex characters, base64 or 32 raw bytes. Errors name `field` and never
 * show the file's content.
 */
export function readCacheKeyFile(path: string, field = 'cacheKeyFile', label = field): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new HoldfastError(ErrorCodes.INVALID_OPTION, `${label} cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
      details: { field },
    });
  }
  const key = parseCacheKey(raw);
  if (!key) {
    throw new HoldfastError(ErrorCodes.INVALID_OPTION, `${label} must hold a 32-byte key: 64 hex characters, base64 or 32 raw bytes`, {
      details: { field },
    });
  }
  return key;
}
