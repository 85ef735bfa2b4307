import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** First byte of a sealed value (a mark of the layout below). */
export const SEALED_MARKER = 0xe5;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Encryption at rest for cached topics and payloads: AES-256-GCM with a fresh random IV per value.
 * Layout: marker, IV, tag, ciphertext. The tag makes a wrong key or a tampered value an error,
 * never garbage.
 */
export class CacheCipher {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('an AES-256 key is 32 bytes');
    this.#key = key;
  }

  seal(plain: Uint8Array): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([Buffer.of(SEALED_MARKER), iv, cipher.getAuthTag(), body]);
  }

  /** Throws when the key is wrong or the value was altered. */
  open(sealed: Uint8Array): Buffer {
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    const iv = buf.subarray(1, 1 + IV_BYTES);
    const tag = buf.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, iv);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(buf.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
  }
}

export function isSealed(bytes: Uint8Array): boolean {
  return bytes.length > 1 + IV_BYTES + TAG_BYTES && bytes[0] === SEALED_MARKER;
}

/** Sealed into the cache's meta when a key is set, to tell a wrong key apart from a damaged cache. */
const KEY_CHECK = 'holdfast cache key check v1';

export function sealKeyCheck(cipher: CacheCipher): Buffer {
  return cipher.seal(Buffer.from(KEY_CHECK));
}

/** Whether `cipher` is the key the cache was written with (false without a cipher). */
export function keyCheckMatches(check: Uint8Array, cipher: CacheCipher | undefined): boolean {
  try {
    return cipher !== undefined && cipher.open(check).toString() === KEY_CHECK;
  } catch {
    return false;
  }
}
