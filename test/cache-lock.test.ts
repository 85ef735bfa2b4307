/**
 * One cacheDir, one client: a second client, in this process or another, is refused with
 * HOLDFAST_CACHE_LOCKED naming the holder's pid (two clients on one cache would drain it twice). A
 * lock whose holder is gone (SIGKILLed, or from before a reboot, or a pid since reused) is taken over.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open, ErrorCodes, HoldfastError, type HoldfastOptions } from 'holdfast';
import { brokerWithProxy, startDevice, tempDir } from './helpers.js';

const rig = brokerWithProxy();
const LOCK = 'holdfast.lock';

function options(clientId: string, cacheDir: string): HoldfastOptions {
  return { broker: rig.proxy.url, clientId, cacheDir, protocolVersion: rig.protocol, reconnect: { minMs: 100, maxMs: 500 } };
}

function isLocked(pid: number): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof HoldfastError, String(err));
    assert.equal(err.code, ErrorCodes.CACHE_LOCKED);
    assert.equal(err.details?.pid, pid);
    assert.match(err.message, new RegExp(`is in use by .*${pid}`));
    return true;
  };
}

/** Field 22 of /proc/<pid>/stat: the process start time, in clock ticks since boot. */
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

const bootId = (): string => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

describe('one client per cacheDir', () => {
  it('a second client in the same process is refused while the first is open, and opens once it closed', async () => {
    const dir = tempDir('lock-same');
    try {
      const first = await open(options('dev-lock-a', dir.path));
      await assert.rejects(open(options('dev-lock-b', dir.path)), isLocked(process.pid));
      await first.close();
      const second = await open(options('dev-lock-b', dir.path));
      await second.close();
    } finally {
      dir.remove();
    }
  });

  it('another process holding it is named; once that process is SIGKILLed the lock is taken over at once', async () => {
    const dir = tempDir('lock-cross');
    try {
      const device = startDevice({ broker: rig.proxy.url, clientId: 'dev-lock-child', cacheDir: dir.path, rate: 10, protocol: rig.protocol });
      await device.waitForEvent((e) => e.open === true, 30_000);
      await assert.rejects(open(options('dev-lock-parent', dir.path)), isLocked(device.pid));
      await device.kill('SIGKILL');
      const client = await open(options('dev-lock-parent', dir.path));
      await client.close();
    } finally {
      dir.remove();
    }
  });

  it('a lock from before a reboot, or naming a pid now used by another process, is stale; a live holder is not', async () => {
    const dir = tempDir('lock-stale');
    const path = join(dir.path, LOCK);
    const lock = (pid: number, boot: string, start: string): void => writeFileSync(path, JSON.stringify({ pid, bootId: boot, startTime: start, token: 'someone-else' }));
    try {
      lock(process.pid, 'a-previous-boot', startTime(process.pid));
      await (await open(options('dev-lock-stale', dir.path))).close();
      // The pid is alive (it is this process) but started at another time: the holder is gone.
      lock(process.pid, bootId(), '1');
      await (await open(options('dev-lock-stale', dir.path))).close();
      // pid 1 runs, and started when the lock says: a live holder.
      lock(1, bootId(), startTime(1));
      await assert.rejects(open(options('dev-lock-stale', dir.path)), isLocked(1));
    } finally {
      dir.remove();
    }
  });
});
