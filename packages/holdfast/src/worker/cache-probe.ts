/**
 * Run as a child process (`node cache-probe.js <path>`) before the worker maps a cache: it opens the
 * file read-only and reads every table and every record's bytes. A truncated or garbage file can make
 * LMDB fault (SIGBUS, SIGSEGV) or report nonsense; here that only ends this probe, and the worker
 * quarantines the file. A single record that does not decode is not the probe's business: the drain
 * moves it to the dead letters and sends the rest.
 *
 * Exit codes are the probe's verdict, so that a probe that could not run at all (no memory to start a
 * process, an interpreter that cannot exec) is never taken for a damaged cache: 0 readable,
 * PROBE_DAMAGED damaged (the reason on stderr); anything else is not a verdict.
 */
import { open } from 'lmdb';
import { isRecordKey, RECORDS_DB } from './cache-layout.js';
import { PROBE_DAMAGED } from './cache-header.js';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: cache-probe <cache.mdb>\n');
  process.exit(2);
}
try {
  const root = open({ path, readOnly: true, noSubdir: true, maxDbs: 8 });
  const records = root.openDB<Buffer, Buffer>({ name: RECORDS_DB, encoding: 'binary', keyEncoding: 'binary' });
  let touched = 0;
  for (const { key, value } of records.getRange()) {
    if (!isRecordKey(key)) throw new Error(`record key ${String(key)} is not a priority and seq`);
    // Touch every byte: what would fault on a truncated file faults here.
    for (let i = 0; i < value.length; i += 512) touched ^= value[i]!;
  }
  for (const name of ['meta', 'outgoing', 'dead']) {
    const db = root.openDB({ name, encoding: 'msgpack' });
    for (const entry of db.getRange()) void entry.value;
  }
  await root.close();
  process.exit(touched >= 0 ? 0 : PROBE_DAMAGED);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(PROBE_DAMAGED);
}
