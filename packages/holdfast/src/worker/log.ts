import { pino, type Logger } from 'pino';
import type { HoldfastEventName } from '../protocol.js';

export type LogLevel = 'silent' | 'fatal' | 'error' | 'warn' | 'info' | 'debug';

/**
 * Structured JSON logs for journald, written from the worker thread straight to stdout (so the app
 * thread does no I/O). Only event metadata is logged: counts, seqs, reasons, never payloads, topics'
 * contents of messages, or credentials.
 */
export function createLogger(level: LogLevel, clientId: string): Logger {
  return pino({ level, base: { lib: 'holdfast', clientId }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 1, sync: false }));
}

/** How loud each event is. */
const LEVELS: Record<HoldfastEventName, 'info' | 'warn' | 'error' | 'debug'> = {
  connect: 'info',
  disconnect: 'warn',
  reconnecting: 'debug',
  offline: 'warn',
  online: 'info',
  spill: 'warn',
  'drain-start': 'info',
  'drain-end': 'info',
  'dead-letter': 'error',
  evict: 'warn',
  'cache-recovered': 'info',
  'intake-replayed': 'warn',
  quarantine: 'error',
  'connection-error': 'warn',
  'delivery-latency': 'debug',
  watchdog: 'warn',
};

export function logEvent(log: Logger, name: HoldfastEventName, data: Record<string, unknown>): void {
  if (name === 'delivery-latency') return;
  log[LEVELS[name]]({ event: name, ...data }, name);
}

/**
 * lmdb-js prints a failed commit (a full disk: ENOSPC, EIO) with console.error, stack and all, and then
 * rejects the commit, which holdfast reports itself (HOLDFAST_CACHE_WRITE_FAILED, /health). The worker
 * thread runs no app code, so console output there comes from dependencies only: it becomes a
 * structured warning in this log instead of a raw trace on stderr.
 */
export function routeConsoleToLog(log: Logger): void {
  const toLog = (...args: unknown[]): void => {
    log.warn({ source: 'dependency' }, args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  };
  console.error = toLog;
  console.warn = toLog;
}
