/**
 * What /health reports: healthy, degraded or unhealthy, and why. Pure: it takes a stats snapshot and
 * a disk reading, so the rules are one readable function.
 */
import { statfs } from 'node:fs/promises';
import type { HoldfastStats } from './stats.js';

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthLimits {
  maxCache: { messages: number; bytes: number };
  /** Degraded above this share of either maxCache bound. */
  cacheRatio: number;
  /** Degraded when the cache's file system has less than this share free... */
  diskMinFreeRatio: number;
  /** ...or fewer than this many bytes free. */
  diskMinFreeBytes: number;
}

export interface DiskReading {
  freeBytes: number;
  totalBytes: number;
}

export interface HealthReport {
  status: HealthStatus;
  /** Why the status is not healthy; empty when healthy. */
  reasons: string[];
  /** undefined when the cache directory could not be examined (the reason says so). */
  disk: DiskReading | undefined;
  stats: HoldfastStats;
}

/** Free space for an unprivileged writer (bavail, not bfree: root's reserve is not ours). */
export async function readDisk(dir: string): Promise<DiskReading | string> {
  try {
    const fs = await statfs(dir);
    return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unknown error';
  }
}

const OFFLINE_BECAUSE = {
  disconnected: 'not connected to the broker',
  'exchange-overdue': 'the broker has not answered the message in flight',
} as const;

function offlineReason(stats: HoldfastStats): string {
  return `offline for ${(stats.offlineForMs / 1000).toFixed(1)} s: ${OFFLINE_BECAUSE[stats.offlineCause ?? 'disconnected']}`;
}

export function evaluateHealth(stats: HoldfastStats, disk: DiskReading | string, limits: HealthLimits): HealthReport {
  const unhealthy: string[] = [];
  if (stats.state === 'closed') unhealthy.push('client closed');
  else if (stats.state === 'failed') unhealthy.push(`worker failed: ${stats.workerFailure ?? 'it could not be restarted'}`);
  else if (stats.state === 'restarting') unhealthy.push('worker restarting after a crash');
  else if (stats.offline) unhealthy.push(offlineReason(stats));
  if (!stats.cacheWritable) unhealthy.push('cache not writable');

  const degraded: string[] = [];
  const { messages, bytes } = limits.maxCache;
  if (stats.cached.messages > limits.cacheRatio * messages) {
    degraded.push(`cache holds ${stats.cached.messages} of ${messages} messages`);
  }
  if (stats.cached.bytes > limits.cacheRatio * bytes) {
    degraded.push(`cache holds ${stats.cached.bytes} of ${bytes} bytes`);
  }
  if (typeof disk === 'string') {
    degraded.push(`cache disk unreadable (${disk})`);
  } else if (disk.freeBytes < limits.diskMinFreeBytes || disk.freeBytes < limits.diskMinFreeRatio * disk.totalBytes) {
    degraded.push(`cache disk nearly full (${disk.freeBytes} of ${disk.totalBytes} bytes free)`);
  }

  const status: HealthStatus = unhealthy.length > 0 ? 'unhealthy' : degraded.length > 0 ? 'degraded' : 'healthy';
  return { status, reasons: [...unhealthy, ...degraded], disk: typeof disk === 'string' ? undefined : disk, stats };
}
