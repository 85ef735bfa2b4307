/**
 * The one error class holdfast throws, with stable string codes (in the spirit of undici's
 * lib/core/errors.js). Codes are API: tests and users switch on them, so never rename one.
 */
export const ErrorCodes = {
  /** An option passed to open() or loadConfig() is missing, unknown or out of range. */
  INVALID_OPTION: 'HOLDFAST_INVALID_OPTION',
  /** publish() was given a topic that MQTT does not allow for publishing. */
  INVALID_TOPIC: 'HOLDFAST_INVALID_TOPIC',
  /** publish() was given a payload that is not a string, Buffer or Uint8Array. */
  INVALID_PAYLOAD: 'HOLDFAST_INVALID_PAYLOAD',
  /** qos is not 1 or 2. */
  INVALID_QOS: 'HOLDFAST_INVALID_QOS',
  /** priority is not an integer from 1 to 10. */
  INVALID_PRIORITY: 'HOLDFAST_INVALID_PRIORITY',
  /** A per-call argument other than the above is malformed. */
  INVALID_ARGUMENT: 'HOLDFAST_INVALID_ARGUMENT',
  /** The client is closing or closed; it accepts nothing more. */
  CLOSED: 'HOLDFAST_CLOSED',
  /** The cache directory could not be created, opened or written. */
  CACHE_UNAVAILABLE: 'HOLDFAST_CACHE_UNAVAILABLE',
  /** The cache could not be read; it was renamed aside (kept for forensics) and a fresh one started. */
  CACHE_QUARANTINED: 'HOLDFAST_CACHE_QUARANTINED',
  /** The cache is encrypted and the cacheKey given (or none) does not open it. Nothing is quarantined. */
  CACHE_KEY_MISMATCH: 'HOLDFAST_CACHE_KEY_MISMATCH',
  /** The cache was written by a holdfast with another on-disk format. Nothing is quarantined or changed. */
  CACHE_FORMAT_UNSUPPORTED: 'HOLDFAST_CACHE_FORMAT_UNSUPPORTED',
  /** A cache write failed (disk full, map full). The client keeps running, unhealthy. */
  CACHE_WRITE_FAILED: 'HOLDFAST_CACHE_WRITE_FAILED',
  /** A subscription handler threw; the other handlers still ran. */
  HANDLER_FAILED: 'HOLDFAST_HANDLER_FAILED',
  /** The worker thread died unexpectedly; it is restarted on the same cache (details.lost: what it took). */
  WORKER_CRASHED: 'HOLDFAST_WORKER_CRASHED',
  /**
   * The worker died and could not be restarted (several tries in a row, with backoff). The client is
   * in state 'failed': publish() and every request throw this; details.lost names what was lost.
   */
  WORKER_FAILED: 'HOLDFAST_WORKER_FAILED',
  /** Another client (in this process or another; details.pid) has the cacheDir open. */
  CACHE_LOCKED: 'HOLDFAST_CACHE_LOCKED',
  /**
   * A bounded operation (open, close) did not finish in time. From close(): the worker was stuck and
   * was terminated; details.lost names the readings it could not save.
   */
  TIMEOUT: 'HOLDFAST_TIMEOUT',
  /** unpackBulk() was given bytes that are not a holdfast bulk message. */
  INVALID_BULK: 'HOLDFAST_INVALID_BULK',
  /** The per-client sequence space is used up (2^21 restarts of 2^32 messages). */
  SEQ_EXHAUSTED: 'HOLDFAST_SEQ_EXHAUSTED',
  /** Anything the worker reported that has no more specific code. */
  INTERNAL: 'HOLDFAST_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const knownCodes = new Set<string>(Object.values(ErrorCodes));

export class HoldfastError extends Error {
  override readonly name = 'HoldfastError';
  readonly code: ErrorCode;
  /** Structured, secret-free context (field names, limits). Never payloads or credentials. */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }
}

/** What crosses the thread boundary: structured clone keeps neither class nor extra fields. */
export interface SerializedError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
  stack?: string;
}

export function serializeError(err: unknown, fallback: ErrorCode = ErrorCodes.INTERNAL): SerializedError {
  if (err instanceof HoldfastError) {
    return { code: err.code, message: err.message, details: err.details ? { ...err.details } : undefined, stack: err.stack };
  }
  if (err instanceof Error) {
    const sysCode = (err as NodeJS.ErrnoException).code;
    return { code: fallback, message: err.message, details: sysCode ? { cause: sysCode } : undefined, stack: err.stack };
  }
  return { code: fallback, message: String(err) };
}

/** Rebuilds a HoldfastError on the facade side, with the worker's stack kept for debugging. */
export function deserializeError(data: SerializedError): HoldfastError {
  const code = knownCodes.has(data.code) ? (data.code as ErrorCode) : ErrorCodes.INTERNAL;
  const err = new HoldfastError(code, data.message, data.details ? { details: data.details } : undefined);
  if (data.stack) err.stack = `${err.stack ?? ''}\n    --- worker stack ---\n${data.stack}`;
  return err;
}
