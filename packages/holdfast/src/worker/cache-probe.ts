/**
 * Run as a child process (`node cache-probe.js <path>`) before the worker maps a cache: it opens the
 * file read-only and reads every table and record. A truncated or garbage file can make LMDB fault
 * (SIGBUS) or report nonsense; here that only ends this probe, and the worker quarantines the file.
 */
import { open } from 'lmdb';
import { isRecordKey, keySeq, RECORDS_DB } from './cache-layout.js';
import { decodeRecord, isSealedRecord, storedSize } from './record.js';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: cache-probe <cache.mdb>\n');
  process.exit(2);
}
try {
  const root = open({ path, readOnly: true, noSubdir: true, maxDbs: 8 });
  const records = root.openDB<Buffer, Buffer>({ name: RECORDS_DB, encoding: 'binary', keyEncoding: 'binary' });
  for (const { key, value } of records.getRange()) {
    if (!isRecordKey(key)) throw new Error(`record key ${String(key)} is not a priority and seq`);
    // A sealed record cannot be decoded here (the probe never sees the key); reading its bytes is
    // what would fault on a truncated file, and GCM authenticates it when the worker opens it.
    if (isSealedRecord(value)) storedSize(value);
    else decodeRecord(keySeq(key), value);
  }
  for (const name of ['meta', 'outgoing', 'dead']) {
    const db = root.openDB({ name, encoding: 'msgpack' });
    for (const entry of db.getRange()) void entry.value;
  }
  await root.close();
  process.exit(0);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
