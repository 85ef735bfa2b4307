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
