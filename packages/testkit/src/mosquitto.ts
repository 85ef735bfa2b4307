import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LOOPBACK } from './ports.js';

/*
 * The Mosquitto backend: find the binary, write a per-broker config, spawn it.
 * Lifecycle (readiness, signals, restarts) lives in broker-process.ts.
 */

// Distro packages install mosquitto in sbin, which is often missing from a user's PATH.
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/opt/homebrew/sbin'];

let cached: string | null | undefined;

/** Absolute path of the mosquitto binary (PATH, then the sbin dirs), or undefined. */
export function findMosquitto(): string | undefined {
  if (cached !== undefined) return cached ?? undefined;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), ...EXTRA_DIRS];
  cached = null;
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'mosquitto');
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) {
        cached = candidate;
        break;
      }
    } catch {
      // not here
    }
  }
  return cached ?? undefined;
}

export interface MosquittoConfigOptions {
  port: number;
  dir: string;
  persistence: boolean;
  extraConfig: readonly string[];
}

export function mosquittoConfig(opts: MosquittoConfigOptions): string {
  const dir = opts.dir.endsWith(path.sep) ? opts.dir : opts.dir + path.sep;
  const lines = [
    `listener ${opts.port} ${LOOPBACK}`,
    'allow_anonymous true',
    'set_tcp_nodelay true',
    'max_queued_messages 1000000',
    'max_inflight_messages 20',
  ];
  // Run as root, mosquitto drops to the `mosquitto` user, which cannot write our 0700 temp
  // dir (log and persistence then fail). Staying root is harmless for a loopback test broker.
  if (process.getuid?.() === 0) lines.push('user root');
  if (opts.persistence) {
    lines.push('persistence true', `persistence_location ${dir}`, 'autosave_interval 1');
  }
  // One type per line: Mosquitto 2.0 reads only the first word of a log_type line.
  lines.push(`log_dest file ${path.join(opts.dir, 'mosquitto.log')}`, 'log_type error', 'log_type warning', 'log_type notice', 'log_type information');
  // Every packet in and out (ids, flags, lengths; never payloads): for chasing a chaos seed's wire history.
  if (process.env.HOLDFAST_MOSQUITTO_DEBUG === '1') lines.push('log_type debug');
  lines.push(...opts.extraConfig);
  return lines.join('\n') + '\n';
}

/** Write `<dir>/mosquitto.conf` for `port` and start mosquitto on it. */
export function spawnMosquitto(bin: string, opts: MosquittoConfigOptions): ChildProcess {
  const conf = path.join(opts.dir, 'mosquitto.conf');
  writeFileSync(conf, mosquittoConfig(opts));
  // stdout carries nothing useful; stderr has the errors printed before the log file opens.
  return spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Last lines of the mosquitto log. Mosquitto buffers its log file, so while it runs this
 * may lag behind; after it exits it is complete.
 */
export function mosquittoLogTail(dir: string, maxLines = 20): string {
  try {
    const lines = readFileSync(path.join(dir, 'mosquitto.log'), 'utf8').trimEnd().split('\n');
    return lines.slice(-maxLines).join('\n');
  } catch {
    return '';
  }
}
