/**
 * Dotted option paths, shared by the zod schema and the layer merging. Kept apart from the schema so
 * that importing holdfast does not load zod: only loadConfig() needs it.
 */

/** A value and the file it may come from instead; a layer may give one or the other, not both. */
export const SECRET_PAIRS = [
  ['password', 'passwordFile'],
  ['tls.ca', 'tls.caFile'],
  ['tls.cert', 'tls.certFile'],
  ['tls.key', 'tls.keyFile'],
  ['tls.passphrase', 'tls.passphraseFile'],
  ['cacheKey', 'cacheKeyFile'],
] as const;

export function getPath(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const part of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}
