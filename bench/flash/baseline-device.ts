/**
 * The flash bench's baseline: what one synced LMDB commit per reading costs, with no MQTT at all.
 * Plain lmdb-js (its defaults, one file), each reading put in its own synchronous, synced transaction,
 * and each drained reading removed the same way. Prints the same marks as device.ts, in two parts:
 *   journal:  HF_COUNT puts at HF_RATE/s (rate-start, rate-end), then puts flat out for HF_WINDOW_S s
 *             (sat-start, sat-end);
 *   drain:    a backlog of HF_BACKLOG readings (one transaction, as a spill writes it), removed oldest
 *             first one commit each, flat out (drain-start, drain-end); then the catch-up: a backlog of
 *             HF_CATCH_UP_BACKLOG while HF_RATE/s new readings keep being put, each its own commit, until
 *             the backlog is removed and less than half a second of readings waits ({"caughtUp":s}),
 *             or it has not shrunk after HF_GIVE_UP_S, or HF_CAP_S have passed ({"caughtUp":null}).
 * Environment: HF_CACHE_DIR (required), HF_RATE (100), HF_COUNT, HF_WINDOW_S, HF_BACKLOG,
 * HF_CATCH_UP_BACKLOG, HF_GIVE_UP_S, HF_CAP_S.
 */
import { join } from 'node:path';
import { open } from 'lmdb';
import { readSyncCounts, writeEventLine } from '@holdfast/testkit';
import { readProcIo } from '../power-cut/proc-io.js';

const env = process.env;
const say = writeEventLine;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const now = (): number => performance.timeOrigin + performance.now();
const rate = Number(env.HF_RATE ?? 100);

const root = open({ path: join(env.HF_CACHE_DIR!, 'baseline.mdb'), noSubdir: true });
const db = root.openDB<string, number>({ name: 'readings' });
let next = 1;
let accepted = 0;
let delivered = 0;
say({ open: true });

function mark(label: string): void {
  say({ mark: label, t: now(), accepted, delivered, io: readProcIo('self'), syncs: readSyncCounts() });
}

function reading(n: number): string {
  return JSON.stringify({ device: 'baseline', n, v: Math.random() });
}

function putOne(): void {
  const n = next++;
  root.transactionSync(() => db.putSync(n, reading(n)));
  accepted++;
}

function removeOldest(): boolean {
  for (const oldest of db.getKeys({ limit: 1 })) {
    root.transactionSync(() => db.removeSync(oldest));
    delivered++;
    return true;
  }
  return false;
}

function backlog(count: number): void {
  root.transactionSync(() => {
    for (let i = 0; i < count; i++) db.putSync(next, reading(next++));
  });
  accepted += count;
}

async function journal(): Promise<void> {
  const count = Number(env.HF_COUNT ?? 1000);
  mark('rate-start');
  const started = performance.now();
  for (let done = 0; done < count; ) {
    const due = Math.min(count, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    for (; done < due; done++) putOne();
    await sleep(2);
  }
  mark('rate-end');
  mark('sat-start');
  const until = performance.now() + Number(env.HF_WINDOW_S ?? 5) * 1000;
  while (performance.now() < until) putOne();
  mark('sat-end');
}

function drain(): void {
  // The journal part's readings are not this part's backlog.
  db.clearSync();
  delivered = accepted;
  backlog(Number(env.HF_BACKLOG ?? 500));
  mark('drain-start');
  while (removeOldest());
  mark('drain-end');
  // The catch-up: a due reading is put before anything is removed (readings arrive whether or not the
  // drain keeps up), one commit per step so the end is checked after each. Caught up, as for holdfast:
  // the whole backlog removed and less than half a second of readings waiting (arrived but not yet put,
  // or put but not yet removed).
  backlog(Number(env.HF_CATCH_UP_BACKLOG ?? 2000));
  const backlogEnd = accepted;
  const started = performance.now();
  const giveUpAt = started + Number(env.HF_GIVE_UP_S ?? 10) * 1000;
  const capAt = started + Number(env.HF_CAP_S ?? 60) * 1000;
  let put = 0;
  const waiting = (at: number): number => Math.floor(((at - started) / 1000) * rate) - put + accepted - delivered;
  const startBacklog = waiting(started);
  let caughtUp: number | null = null;
  for (;;) {
    const at = performance.now();
    if (put < Math.floor(((at - started) / 1000) * rate)) {
      putOne();
      put++;
    } else removeOldest();
    if (delivered >= backlogEnd && waiting(at) < rate / 2) {
      caughtUp = (performance.now() - started) / 1000;
      break;
    }
    if ((at > giveUpAt && waiting(at) >= startBacklog) || at > capAt) break;
  }
  say({ caughtUp });
}

await journal();
drain();
await root.close();
say({ done: true });
