import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** cache-probe's exit code for a cache it found damaged; any other non-zero exit is no verdict. */
export const PROBE_DAMAGED = 3;

const META_MAGIC = 0xbeefc0de;
const P_META = 0x08;

/** Where the meta fields sit after the page header: 16 bytes in LMDB 0.9, 24 in the 1.0 format lmdb-js uses. */
const HEADER_SIZES = [24, 16] as const;

interface MetaPage {
  pageSize: number;
  lastPage: bigint;
  txn: bigint;
}

/** Reads one meta page (magic, page size, last page, txn id), or undefined when it is not one. */
function readMeta(page: Buffer): MetaPage | undefined {
  for (const h of HEADER_SIZES) {
    if (page.length < h + 136 || page.readUInt32LE(h) !== META_MAGIC || (page.readUInt16LE(h - 6) & P_META) === 0) continue;
    // magic, version, address, mapsize, then the free-db record whose first word is the page size.
    return { pageSize: page.readUInt32LE(h + 24), lastPage: page.readBigUInt64LE(h + 120), txn: page.readBigUInt64LE(h + 128) };
  }
  return undefined;
}

/**
 * Checks the two LMDB meta pages before handing the file to LMDB: the native library trusts its
 * header and crashes the whole process (SIGSEGV) on a garbage or truncated file, rather than throw.
 */
export function checkHeader(path: string): void {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const page = Buffer.alloc(256);
    const first = readSync(fd, page, 0, page.length, 0) === page.length ? readMeta(page) : undefined;
    const pageSize = first?.pageSize ?? 0;
    if (first === undefined || pageSize < 512 || pageSize > 65_536 || (pageSize & (pageSize - 1)) !== 0 || size < 2 * pageSize) {
      throw new Error('it is not an LMDB file (no valid meta page)');
    }
    const second = readSync(fd, page, 0, page.length, pageSize) === page.length ? readMeta(page) : undefined;
    if (second === undefined) throw new Error('its second meta page is damaged');
    const newest = second.txn > first.txn ? second : first;
    const needed = (newest.lastPage + 1n) * BigInt(pageSize);
    if (needed > BigInt(size)) throw new Error(`it is truncated (${size} bytes; its header needs ${needed})`);
  } finally {
    closeSync(fd);
  }
}

