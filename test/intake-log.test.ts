/**
 * Journal mode's intake log: publish() writes each reading to the cache directory before it returns, so
 * a SIGKILL at any moment, even in the same tick as publish(), before the batch has left the app
 * thread, loses nothing it accepted. A torn last frame is expected after a power cut; damage before
 * the end renames the segment aside (kept, reported). Segments are deleted once committed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { inspectCache, open, ErrorCodes, type HealthReport, type HoldfastClient, HoldfastError, type HoldfastOptions, type QuarantineInfo } from 'holdfast';
import {
  acceptedNumbers,
  auditedBrokerWithProxy,
  needsRoot,
  skipUnlessCI,
  startDevice,
  tempDir,
  tinyTmpfs,
  waitUntil,
} from './helpers.js';
import { injectFault, restartEvents, within } from './fault-hook.js';
import { assertEvictedByPriority, openWithHealth, settledArrivals, watchHealth, type PublishedReading } from './eviction.js';

const rig = auditedBrokerWithProxy();
const segments = (dir: string): string[] => readdirSync(dir).filter((f) => /^intake-.*\.log$/.test(f));

/** A device that publishes from `nStart` and SIGKILLs itself right after publish() accepts reading `killAt` (same tick). */
async function killedMidTick(clientId: string, dir: string, killAt: number, nStart = 1): Promise<number[]> {
  const device = startDevice({ broker: rig.proxy.url, clientId, cacheDir: dir, durability: 'journal', rate: 5000, count: killAt + 1000, nStart, killAt, protocol: rig.protocol });
  const exit = await device.exited;
  assert.equal(exit.signal, 'SIGKILL');
  const accepted = acceptedNumbers(device);
  assert.equal(accepted.at(-1), killAt, 'the device died right after accepting the reading');
  return accepted;
}

async function restartAndDrain(clientId: string, dir: string, nStart: number): Promise<number[]> {
  const device = startDevice({ broker: rig.proxy.url, clientId, cacheDir: dir, durability: 'journal', rate: 200, count: 20, nStart, after: 'drain', protocol: rig.protocol });
  await device.waitForEvent((e) => e.closed === true, 60_000);
  await device.exited;
  return acceptedNumbers(device);
}

/**
 * Spoils the checksum (or the length) of the middle frame of the newest segment (frame: length u32,
 * checksum u32, body). Returns the reading numbers a replay can still read, and the one it cannot.
 */
function damageMiddleFrame(dir: string, field: 'checksum' | 'length' = 'checksum'): { readable: number[]; unreadable: number[] } {
  const name = segments(dir).sort().at(-1)!;
  const bytes = readFileSync(join(dir, name));
  const frames: Array<{ offset: number; n: number }> = [];
  for (let offset = 0; offset + 8 <= bytes.length; ) {
    const length = bytes.readUInt32LE(offset);
    const body = bytes.subarray(offset + 8, offset + 8 + length).toString('latin1');
    frames.push({ offset, n: Number(/"n":(\d+)/.exec(body)?.[1]) });
    offset += 8 + length;
  }
  const middle = Math.floor(frames.length / 2);
  // The checksum's first byte, or the length's third (a length past the end of the file, as a torn write leaves).
  const at = frames[middle]!.offset + (field === 'checksum' ? 4 : 2);
  bytes[at] = bytes[at]! ^ 0x01;
  writeFileSync(join(dir, name), bytes);
  const inOtherSegments = segments(dir).filter((s) => s !== name).length > 0;
  assert.ok(!inOtherSegments || frames.length > 2, 'the damaged segment holds readings');
  // The replay reads on from the next whole frame: only the damaged one is gone.
  return { readable: frames.filter((_, i) => i !== middle).map((f) => f.n), unreadable: [frames[middle]!.n] };
}

function expectExactlyInOrder(clientId: string, expected: number[]): Promise<void> {
  return rig.auditor.waitFor({ [clientId]: expected }, 20_000).then((report) => {
    const device = report.devices[clientId]!;
    assert.deepEqual({ lost: device.lost, duplicates: device.duplicates, outOfOrder: device.outOfOrder }, { lost: 0, duplicates: 0, outOfOrder: 0 });
  });
}

describe('intake log (journal mode)', () => {
  it('a SIGKILL in the same tick as publish() loses nothing accepted; segments are deleted once committed', async () => {
    const dir = tempDir('intake-kill');
    try {
      const before = await killedMidTick('dev-intake', dir.path, 600);
      assert.ok(segments(dir.path).length > 0, 'the killed run left its intake log');
      const after = await restartAndDrain('dev-intake', dir.path, 601);
      await expectExactlyInOrder('dev-intake', [...before, ...after]);
      assert.deepEqual(segments(dir.path), [], 'every segment was deleted once its readings were committed');
    } finally {
      dir.remove();
    }
  });

  it('after a worker restart, a SIGKILL loses nothing: the new worker never replays or deletes the segment the facade writes', async () => {
    const dir = tempDir('intake-restart');
    try {
      const device = startDevice({ broker: rig.proxy.url, clientId: 'dev-intake-restart', cacheDir: dir.path, durability: 'journal', rate: 200, count: 5000, faultAt: 200, killAt: 900, protocol: rig.protocol });
      await device.waitForEvent((e) => typeof e.workerRestart === 'string', 30_000);
      assert.equal((await device.exited).signal, 'SIGKILL');
      const before = acceptedNumbers(device);
      assert.equal(before.at(-1), 900);
      const after = await restartAndDrain('dev-intake-restart', dir.path, 901);
      await expectExactlyInOrder('dev-intake-restart', [...before, ...after]);
    } finally {
      dir.remove();
    }
  });

  it('a torn last frame is dropped quietly; damage before the end quarantines the segment, not the cache', async () => {
    const dir = tempDir('intake-damage');
    try {
      const before = await killedMidTick('dev-torn', dir.path, 300);
      const [newest] = segments(dir.path).sort().reverse();
      // A write cut short by the power: a header that promises more bytes than follow.
      appendFileSync(join(dir.path, newest!), Buffer.from([0xff, 0x00, 0x00, 0x00, 0x12, 0x34]));
      const after = await restartAndDrain('dev-torn', dir.path, 301);
      await expectExactlyInOrder('dev-torn', [...before, ...after]);
      assert.deepEqual(readdirSync(dir.path).filter((f) => f.includes('corrupt')), [], 'a torn tail is not corruption');

      await killedMidTick('dev-torn', dir.path, 330, 321);
      const [damaged] = segments(dir.path).sort().reverse();
      const bytes = readFileSync(join(dir.path, damaged!));
      bytes[12] = bytes[12]! ^ 0xff; // inside the first frame's body: its checksum no longer matches
      writeFileSync(join(dir.path, damaged!), bytes);
      const client = await openJournal('dev-torn', dir.path);
      const quarantines: QuarantineInfo[] = [];
      client.on('quarantine', (info: QuarantineInfo) => quarantines.push(info));
      await waitUntil(() => quarantines.length > 0, 10_000, 'the quarantine event');
      assert.match(quarantines[0]!.reason, /intake log damaged: checksum mismatch/);
      assert.equal(client.quarantined, undefined, 'the cache itself was fine');
      assert.ok(quarantines[0]!.movedTo.startsWith(join(dir.path, `${damaged}.corrupt-`)), 'to be renamed aside');
      await client.drained();
      await waitUntil(() => existsSync(quarantines[0]!.movedTo), 10_000, 'the damaged segment renamed aside (kept) once nothing in it waits');
      await client.close();
      assert.deepEqual((await inspectCache(dir.path)).quarantined, [basename(quarantines[0]!.movedTo)], 'holdfast cache inspect lists it');
    } finally {
      dir.remove();
    }
  });

  it('a damaged segment stays in place until the readings before the damage are committed: a SIGKILL first loses none of them', async () => {
    const dir = tempDir('intake-damage-kill');
    const id = 'dev-damage-kill';
    // A hung broker: nothing is delivered, so every reading lives in the intake log alone.
    rig.broker.pause();
    try {
      const before = await killedMidTick(id, dir.path, 400);
      const damage = damageMiddleFrame(dir.path);
      assert.ok(damage.readable.length > 0 && damage.unreadable.length > 0, `a frame in the middle: ${JSON.stringify(damage)}`);
      // The next life opens (it finds the damage), takes one reading and is killed before anything is committed.
      const second = startDevice({ broker: rig.proxy.url, clientId: id, cacheDir: dir.path, durability: 'journal', rate: 200, count: 10, nStart: 401, killAt: 401, protocol: rig.protocol });
      assert.equal((await second.exited).signal, 'SIGKILL');
      assert.deepEqual(acceptedNumbers(second), [401]);
      rig.broker.resume();
      const after = await restartAndDrain(id, dir.path, 402);
      const expected = before.filter((n) => !damage.unreadable.includes(n));
      await expectExactlyInOrder(id, [...expected, 401, ...after]);
      assert.equal(readdirSync(dir.path).filter((f) => f.includes('.corrupt-')).length, 1, 'set aside once, kept');
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('a spill run that delivers what a journal run left in the log, killed before the segment is deleted, sends none of it twice', async () => {
    const dir = tempDir('intake-spill-replay');
    const id = 'dev-spill-replay';
    // A hung broker: the journal life's readings live in the intake log alone when it is killed.
    rig.broker.pause();
    try {
      const before = await killedMidTick(id, dir.path, 100);
      rig.broker.resume();
      // The same cache in spill mode replays them from memory; killed the moment they are delivered.
      const spill = startDevice({ broker: rig.proxy.url, clientId: id, cacheDir: dir.path, durability: 'spill', count: 0, after: 'watch', killAtDelivered: before.length, protocol: rig.protocol });
      assert.equal((await spill.exited).signal, 'SIGKILL');
      assert.ok(spill.events.some((e) => typeof e.killedAtDelivered === 'number'), 'killed after delivering the replay');
      const after = await restartAndDrain(id, dir.path, 101);
      await expectExactlyInOrder(id, [...before, ...after]);
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('a worker that dies replaying what a journal run left in the log, before this run published anything: the replacement replays it, nothing is lost', async () => {
    const dir = tempDir('intake-replay-crash');
    const id = 'dev-replay-crash';
    rig.broker.pause();
    let client: HoldfastClient | undefined;
    try {
      const before = await killedMidTick(id, dir.path, 100);
      // Still hung: the spill run holds the replay in its worker's memory when the worker dies.
      client = await open({ broker: rig.proxy.url, clientId: id, cacheDir: dir.path, protocolVersion: rig.protocol, durability: 'spill', timeoutMs: 60_000, reconnect: { minMs: 100, maxMs: 500 } });
      const opened = client;
      const restarts = restartEvents(opened);
      await waitUntil(() => opened.stats().memoryQueued + opened.stats().inflight === before.length, 20_000, 'the worker to hold the replay');
      injectFault(opened, 'throw');
      await waitUntil(() => restarts.length === 1 && opened.state !== 'restarting', 30_000, 'the restart');
      rig.broker.resume();
      await within(opened.drained(), 30_000, 'drained()');
      await opened.close();
      await expectExactlyInOrder(id, before);
    } finally {
      rig.broker.resume();
      await client?.close().catch(() => undefined);
      dir.remove();
    }
  });

  it('a cache quarantined while the log holds readings: the new run takes neither their seqs nor their segment names', async () => {
    const dir = tempDir('intake-quarantine');
    const id = 'dev-intake-quarantine';
    rig.broker.pause();
    try {
      const before = await killedMidTick(id, dir.path, 200);
      rig.broker.resume();
      // The cache is damaged; the intake log beside it is intact, and a fresh cache starts its epochs over.
      writeFileSync(join(dir.path, 'cache.mdb'), randomBytes(64 * 1024), { mode: 0o600 });
      const after = await restartAndDrain(id, dir.path, 201);
      assert.ok(readdirSync(dir.path).some((f) => f.startsWith('cache.mdb.corrupt-')), 'the cache was quarantined');
      assert.deepEqual(after, Array.from({ length: 20 }, (_, i) => 201 + i), 'every new reading was accepted');
      await expectExactlyInOrder(id, [...before, ...after]);
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('a length damaged in the middle of a segment is reported and kept, not dropped quietly as a torn tail; the frames after it are read', async () => {
    const dir = tempDir('intake-damage-length');
    const id = 'dev-damage-length';
    rig.broker.pause();
    try {
      const before = await killedMidTick(id, dir.path, 300);
      rig.broker.resume();
      const damage = damageMiddleFrame(dir.path, 'length');
      const client = await openJournal(id, dir.path);
      const quarantines: QuarantineInfo[] = [];
      client.on('quarantine', (info: QuarantineInfo) => quarantines.push(info));
      try {
        await client.drained();
      } finally {
        await client.close();
      }
      await expectExactlyInOrder(id, before.filter((n) => !damage.unreadable.includes(n)));
      assert.equal(quarantines.length, 1, `damage before the end is reported (reading ${damage.unreadable.join(', ')} is gone)`);
      assert.equal(readdirSync(dir.path).filter((f) => f.includes('.corrupt-')).length, 1, 'and the segment is kept');
    } finally {
      rig.broker.resume();
      dir.remove();
    }
  });

  it('a full disk: publish() refuses what it cannot log, the failure is reported once, and only eviction removes accepted readings', async (t) => {
    const noRoot = needsRoot();
    if (noRoot) return skipUnlessCI(t, noRoot);
    const disk = tinyTmpfs('intake-full');
    const cacheDir = join(disk.path, 'cache');
    await rig.proxy.refuse(true);
    let client: HoldfastClient | undefined;
    try {
      const opened = await openWithHealth(journalOptions('dev-intake-full', cacheDir, { highWater: { messages: 200 } }));
      client = opened.client;
      const c = client;
      const errors: HoldfastError[] = [];
      c.on('error', (err: HoldfastError) => errors.push(err));
      const reports: HealthReport[] = [];
      const watching = watchHealth(opened.health, reports, (r) => r.reasons.includes('cache not writable'));
      const pad = 'x'.repeat(1024);
      const published: PublishedReading[] = [];
      const refused: number[] = [];
      let n = 0;
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 100; i++) {
          n++;
          const priority = n % 10 === 0 ? 9 : 3;
          try {
            c.publish('sensors/dev-intake-full', JSON.stringify({ device: 'dev-intake-full', n, pad }), { priority });
            published.push({ n, priority });
          } catch (err) {
            // Journal mode accepts only what it has written to its intake log: a full disk refuses.
            assert.ok(err instanceof HoldfastError && err.code === ErrorCodes.CACHE_WRITE_FAILED, String(err));
            refused.push(n);
          }
        }
        // Paced so the disk fills while the worker writes, round by round.
        await new Promise((r) => setTimeout(r, 50));
      }
      // Whichever fills the disk first reports it: the cache, or the intake log (then paused for the cache).
      await waitUntil(() => errors.length > 0, 10_000, 'the disk-full report');
      await watching;
      assert.ok(errors.every((e) => e.code === ErrorCodes.CACHE_WRITE_FAILED));
      assert.ok(errors.filter((e) => e.message.includes('intake log')).length <= 1, 'the intake log reports once, not per reading');
      assert.ok(
        reports.some((r) => r.status === 'unhealthy' && r.reasons.includes('cache not writable')),
        `/health said 'cache not writable' during the episode; it said: ${reports.map((r) => r.reasons.join(', ')).join(' | ')}`,
      );

      // The episode ends with the link still down, so eviction never races an exchange in flight
      // (which it must never take, whatever its priority).
      await waitUntil(() => c.stats().cacheWritable, 30_000, 'the cache to recover').catch((err: Error) => { throw new Error(`${err.message}; stats ${JSON.stringify(c.stats())}, files ${readdirSync(cacheDir).join(' ')}`); });
      await rig.proxy.refuse(false);
      const arrivals = await withTimeout(settledArrivals(rig.auditor, c, 'dev-intake-full', n + 1), 60_000, () => `the drain after the disk-full episode; stats ${JSON.stringify(c.stats())}, files ${readdirSync(cacheDir).join(' ')}`);
      assert.ok(!arrivals.some((a) => refused.includes(a)), 'nothing refused was sent');
      const evicted = assertEvictedByPriority(published, arrivals);
      assert.ok(evicted.length > 0, 'the full disk really forced evictions');
      assert.equal(c.stats().evicted, evicted.length, 'every reading missing at the subscriber was counted as evicted');
      await c.close();
      client = undefined;
      assert.deepEqual(segments(cacheDir), [], 'no segment left behind');
    } finally {
      await client?.close();
      await rig.proxy.refuse(false);
      disk.remove();
    }
  });
});

async function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function journalOptions(clientId: string, cacheDir: string, extra: Partial<HoldfastOptions> = {}): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, durability: 'journal', protocolVersion: rig.protocol, timeoutMs: 1000, reconnect: { minMs: 200, maxMs: 1000 }, ...extra };
}

function openJournal(clientId: string, cacheDir: string): Promise<HoldfastClient> {
  return open(journalOptions(clientId, cacheDir));
}
