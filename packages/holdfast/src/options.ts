import { ErrorCodes, HoldfastError } from './errors.js';

/** Options for {@link open}. Every field is validated at the call site; unknown fields are rejected. */
export interface HoldfastOptions {
  /** Broker URL: `mqtt:`, `mqtts:`, `ws:` or `wss:`. Required. */
  broker: string;
  /** MQTT client id. Required, no default: a persistent session is keyed by it. */
  clientId: string;
  /** Where the LMDB cache lives (created 0700, files 0600). @default './holdfast-cache' */
  cacheDir?: string;
  /** QoS for every message. 1 is for brokers without QoS 2 (AWS IoT Core, Azure IoT Hub). @default 2 */
  qos?: 1 | 2;
  /**
   * 'spill' writes flash only during trouble; 'journal' writes every message to an intake log before
   * publish() returns (a crash loses nothing accepted) and commits it to LMDB before sending. @default 'spill'
   */
  durability?: 'spill' | 'journal';
  /**
   * How long to wait for PUBCOMP before spilling the pending stream to the cache. A quarter of it
   * without an answer already counts as offline (stats().offline, 'exchange-overdue'). @default 10000
   */
  timeoutMs?: number;
  /**
   * The watchdog: an exchange with no acknowledgement for this long on a live connection (a lost
   * PUBREC or PUBCOMP, or a broker that answers pings but never the exchange) makes the client drop
   * the connection and resend it on a new one, as MQTT requires. At least timeoutMs. @default 3 × timeoutMs
   */
  watchdogMs?: number;
  /**
   * A message that is in flight when the connection drops this many times in a row, each time with no
   * progress, goes to the dead letters: some brokers (AWS IoT Core; MQTT 5 for an oversized packet)
   * disconnect instead of refusing it, and it must not block the queue forever. @default 5
   */
  deadLetterAfterDisconnects?: number;
  /** In-memory queue limit; passing either bound spills to the cache. @default { messages: 10000, bytes: 16777216 } */
  highWater?: { messages?: number; bytes?: number };
  /** Cache bounds; when full, the lowest priority is evicted first. @default { messages: 1000000, bytes: 1073741824 } */
  maxCache?: { messages?: number; bytes?: number };
  /** Pack cached backlog into bulk messages while draining. @default false */
  bulk?: false | { maxMessages?: number; maxBytes?: number; topic?: string };
  /** Reconnect backoff: exponential from minMs to maxMs with full jitter. @default { minMs: 1000, maxMs: 60000 } */
  reconnect?: { minMs?: number; maxMs?: number };
  /** Session: `clean: false` keeps broker-side state for exactly-once. @default { clean: false, expirySec: 604800 } */
  session?: { clean?: boolean; expirySec?: number };
  /** MQTT protocol version: 5, or 4 for 3.1.1. @default 5 */
  protocolVersion?: 4 | 5;
  /** MQTT keepalive in seconds. @default 30 */
  keepaliveSec?: number;
  /** How long one connection attempt may take before it counts as failed. @default 10000 */
  connectTimeoutMs?: number;
  /**
   * Upper bound for close(); 2 s after it the worker is terminated regardless, and close() rejects with
   * HOLDFAST_TIMEOUT naming what it could not save. @default 5000
   */
  closeTimeoutMs?: number;
  /** TLS material (PEM strings or Buffers). mTLS when cert and key are given. @default undefined */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; passphrase?: string; rejectUnauthorized?: boolean };
  /** Broker username. @default undefined */
  username?: string;
  /** Broker password. Never logged or exposed. @default undefined */
  password?: string;
  /** Serve GET /health and GET /metrics. Off unless given; host defaults to loopback. @default false */
  health?: false | { port?: number; host?: string };
  /**
   * Encrypts cached topics and payloads at rest (AES-256-GCM): 32 bytes as a Buffer, 64 hex characters
   * or base64. A cache written with a key opens only with it. Never logged. @default undefined
   */
  cacheKey?: string | Buffer;
  /** A file holding the cacheKey (hex, base64 or 32 raw bytes), read by the worker. @default undefined */
  cacheKeyFile?: string;
  /**
   * JSON logs to stdout (for journald): connect, disconnect (with reason), every outage (offline with its
   * cause, online with its duration), spill, drain start and end, eviction, dead letter, quarantine. Off by default so a program that owns its stdout keeps it;
   * a quarantine is always reported on stderr regardless. @default 'silent'
   */
  logLevel?: 'silent' | 'fatal' | 'error' | 'warn' | 'info' | 'debug';
}

/** Options after defaults, as the worker receives them. */
export interface ResolvedOptions {
  broker: string;
  clientId: string;
  cacheDir: string;
  qos: 1 | 2;
  durability: 'spill' | 'journal';
  timeoutMs: number;
  watchdogMs: number;
  deadLetterAfterDisconnects: number;
  highWater: { messages: number; bytes: number };
  maxCache: { messages: number; bytes: number };
  bulk: false | { maxMessages: number; maxBytes: number; topic: string };
  reconnect: { minMs: number; maxMs: number };
  session: { clean: boolean; expirySec: number };
  protocolVersion: 4 | 5;
  keepaliveSec: number;
  connectTimeoutMs: number;
  closeTimeoutMs: number;
  tls: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; passphrase?: string; rejectUnauthorized: boolean } | undefined;
  username: string | undefined;
  password: string | undefined;
  health: { port: number; host: string } | undefined;
  logLevel: 'silent' | 'fatal' | 'error' | 'warn' | 'info' | 'debug';
  cacheKey: Buffer | undefined;
  cacheKeyFile: string | undefined;
}

export const DEFAULTS = {
  cacheDir: './holdfast-cache',
  qos: 2,
  durability: 'spill',
  timeoutMs: 10_000,
  /** The watchdog's default, as a multiple of timeoutMs. */
  watchdogTimeouts: 3,
  deadLetterAfterDisconnects: 5,
  highWater: { messages: 10_000, bytes: 16 * 1024 * 1024 },
  maxCache: { messages: 1_000_000, bytes: 1024 * 1024 * 1024 },
  bulk: { maxMessages: 1000, maxBytes: 256 * 1024 },
  reconnect: { minMs: 1000, maxMs: 60_000 },
  session: { clean: false, expirySec: 7 * 24 * 3600 },
  protocolVersion: 5,
  keepaliveSec: 30,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 5000,
} as const;

const BROKER_PROTOCOLS = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:']);

function fail(field: string, allowed: string, got: unknown): never {
  const shown = field === 'password' || field === 'cacheKey' || field.startsWith('tls.') ? '(hidden)' : describe(got);
  throw new HoldfastError(ErrorCodes.INVALID_OPTION, `options.${field} must be ${allowed}; got ${shown}`, {
    details: { field, allowed },
  });
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function checkKeys(obj: Record<string, unknown>, allowedKeys: readonly string[], prefix: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowedKeys.includes(key)) {
      const field = prefix ? `${prefix}.${key}` : key;
      throw new HoldfastError(ErrorCodes.INVALID_OPTION, `options.${field} is not a known option (known: ${allowedKeys.join(', ')})`, {
        details: { field, allowed: allowedKeys.join(', ') },
      });
    }
  }
}

function int(obj: Record<string, unknown>, key: string, prefix: string, min: number, max: number, fallback: number): number {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(prefix + key, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

function section(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = obj[key];
  if (value === undefined) return {};
  if (!isPlainObject(value)) fail(key, 'an object', value);
  return value;
}

function text(obj: Record<string, unknown>, key: string, prefix = ''): string | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) fail(prefix + key, 'a non-empty string', value);
  return value;
}

function pem(obj: Record<string, unknown>, key: string): string | Buffer | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' && !Buffer.isBuffer(value)) fail(`tls.${key}`, 'a PEM string or Buffer', value);
  return value;
}

const TOP_KEYS = [
  'broker', 'clientId', 'cacheDir', 'qos', 'durability', 'timeoutMs', 'watchdogMs', 'deadLetterAfterDisconnects', 'highWater', 'maxCache', 'bulk', 'reconnect',
  'session', 'protocolVersion', 'keepaliveSec', 'connectTimeoutMs', 'closeTimeoutMs', 'tls', 'username', 'password', 'health', 'logLevel', 'cacheKey', 'cacheKeyFile',
] as const;

export function validateBrokerUrl(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) fail('broker', 'a broker URL such as mqtt://host:1883', value);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail('broker', 'a valid URL with scheme mqtt:, mqtts:, ws: or wss:', value);
  }
  if (!BROKER_PROTOCOLS.has(url.protocol)) fail('broker', 'a URL with scheme mqtt:, mqtts:, ws: or wss:', `${url.protocol}…`);
  if (!url.hostname) fail('broker', 'a URL with a host name', value);
  if (url.username || url.password) fail('broker', 'a URL without credentials (use options.username/password)', '(hidden)');
  return value;
}

/** Validates user options and fills in defaults. Throws HoldfastError(INVALID_OPTION) naming the field. */
export function resolveOptions(input: unknown): ResolvedOptions {
  if (!isPlainObject(input)) fail('(root)', 'an object', input);
  checkKeys(input, TOP_KEYS, '');
  const broker = validateBrokerUrl(input.broker);
  const clientId = input.clientId;
  if (typeof clientId !== 'string' || clientId.length === 0 || Buffer.byteLength(clientId) > 65_535) {
    fail('clientId', 'a non-empty string (it has no default: the broker keys the session by it)', clientId);
  }
  const cacheDir = text(input, 'cacheDir') ?? DEFAULTS.cacheDir;

  const qos = input.qos ?? DEFAULTS.qos;
  if (qos !== 1 && qos !== 2) fail('qos', '1 or 2', qos);
  const durability = input.durability ?? DEFAULTS.durability;
  if (durability !== 'spill' && durability !== 'journal') fail('durability', "'spill' or 'journal'", durability);
  const protocolVersion = input.protocolVersion ?? DEFAULTS.protocolVersion;
  if (protocolVersion !== 4 && protocolVersion !== 5) fail('protocolVersion', '4 (MQTT 3.1.1) or 5', protocolVersion);

  const hw = section(input, 'highWater');
  checkKeys(hw, ['messages', 'bytes'], 'highWater');
  const mc = section(input, 'maxCache');
  checkKeys(mc, ['messages', 'bytes'], 'maxCache');
  const rc = section(input, 'reconnect');
  checkKeys(rc, ['minMs', 'maxMs'], 'reconnect');
  const reconnect = {
    minMs: int(rc, 'minMs', 'reconnect.', 10, 3_600_000, DEFAULTS.reconnect.minMs),
    maxMs: int(rc, 'maxMs', 'reconnect.', 10, 3_600_000, DEFAULTS.reconnect.maxMs),
  };
  if (reconnect.maxMs < reconnect.minMs) fail('reconnect.maxMs', `at least reconnect.minMs (${reconnect.minMs})`, reconnect.maxMs);
  const ss = section(input, 'session');
  checkKeys(ss, ['clean', 'expirySec'], 'session');
  if (ss.clean !== undefined && typeof ss.clean !== 'boolean') fail('session.clean', 'a boolean', ss.clean);

  const timeoutMs = int(input, 'timeoutMs', '', 10, 3_600_000, DEFAULTS.timeoutMs);
  const watchdogMs = int(input, 'watchdogMs', '', 10, 24 * 3_600_000, DEFAULTS.watchdogTimeouts * timeoutMs);
  if (watchdogMs < timeoutMs) fail('watchdogMs', `at least timeoutMs (${timeoutMs})`, watchdogMs);

  return {
    broker,
    clientId,
    cacheDir,
    qos,
    durability,
    timeoutMs,
    watchdogMs,
    deadLetterAfterDisconnects: int(input, 'deadLetterAfterDisconnects', '', 1, 1000, DEFAULTS.deadLetterAfterDisconnects),
    highWater: {
      messages: int(hw, 'messages', 'highWater.', 1, 10_000_000, DEFAULTS.highWater.messages),
      bytes: int(hw, 'bytes', 'highWater.', 1024, 2 ** 31, DEFAULTS.highWater.bytes),
    },
    maxCache: {
      messages: int(mc, 'messages', 'maxCache.', 1, 1_000_000_000, DEFAULTS.maxCache.messages),
      bytes: int(mc, 'bytes', 'maxCache.', 4096, 2 ** 40, DEFAULTS.maxCache.bytes),
    },
    bulk: resolveBulk(input.bulk, clientId),
    reconnect,
    session: {
      clean: (ss.clean as boolean | undefined) ?? DEFAULTS.session.clean,
      expirySec: int(ss, 'expirySec', 'session.', 0, 0xffffffff, DEFAULTS.session.expirySec),
    },
    protocolVersion,
    keepaliveSec: int(input, 'keepaliveSec', '', 1, 65_535, DEFAULTS.keepaliveSec),
    connectTimeoutMs: int(input, 'connectTimeoutMs', '', 100, 600_000, DEFAULTS.connectTimeoutMs),
    closeTimeoutMs: int(input, 'closeTimeoutMs', '', 100, 600_000, DEFAULTS.closeTimeoutMs),
    tls: resolveTls(input.tls),
    username: text(input, 'username'),
    password: input.password === undefined ? undefined : (text(input, 'password') as string),
    health: resolveHealth(input.health),
    logLevel: resolveLogLevel(input.logLevel),
    ...resolveCacheKey(input),
  };
}

/** Reads a 32-byte AES key from a Buffer, 64 hex characters or base64; undefined when it is not one. */
export function parseCacheKey(value: string | Buffer): Buffer | undefined {
  if (Buffer.isBuffer(value)) {
    if (value.length === 32) return Buffer.from(value);
    return parseCacheKey(value.toString('utf8').trim());
  }
  const text = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  const decoded = /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  return decoded?.length === 32 ? decoded : undefined;
}

function resolveCacheKey(input: Record<string, unknown>): Pick<ResolvedOptions, 'cacheKey' | 'cacheKeyFile'> {
  const { cacheKey, cacheKeyFile } = input;
  if (cacheKey !== undefined && cacheKeyFile !== undefined) fail('cacheKey', 'given without cacheKeyFile (one or the other)', '(hidden)');
  if (cacheKeyFile !== undefined) return { cacheKey: undefined, cacheKeyFile: text(input, 'cacheKeyFile') };
  if (cacheKey === undefined) return { cacheKey: undefined, cacheKeyFile: undefined };
  const key = typeof cacheKey === 'string' || Buffer.isBuffer(cacheKey) ? parseCacheKey(cacheKey) : undefined;
  if (!key) fail('cacheKey', 'a 32-byte key: a Buffer, 64 hex characters or base64', '(hidden)');
  return { cacheKey: key, cacheKeyFile: undefined };
}

const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug'] as const;

function resolveLogLevel(value: unknown): ResolvedOptions['logLevel'] {
  if (value === undefined) return 'silent';
  if (!(LOG_LEVELS as readonly unknown[]).includes(value)) fail('logLevel', `one of ${LOG_LEVELS.join(', ')}`, value);
  return value as ResolvedOptions['logLevel'];
}

function resolveHealth(value: unknown): ResolvedOptions['health'] {
  if (value === undefined || value === false) return undefined;
  if (!isPlainObject(value)) fail('health', 'false or { port, host }', value);
  checkKeys(value, ['port', 'host'], 'health');
  return { port: int(value, 'port', 'health.', 0, 65_535, 9464), host: text(value, 'host', 'health.') ?? '127.0.0.1' };
}

/** The default bulk topic names the client, so receivers can tell devices apart. */
export function defaultBulkTopic(clientId: string): string {
  return `holdfast/bulk/${clientId}`;
}

function resolveBulk(value: unknown, clientId: string): ResolvedOptions['bulk'] {
  if (value === undefined || value === false) return false;
  if (value === true) value = {};
  if (!isPlainObject(value)) fail('bulk', 'false, true or { maxMessages, maxBytes, topic }', value);
  checkKeys(value, ['maxMessages', 'maxBytes', 'topic'], 'bulk');
  const topic = text(value, 'topic', 'bulk.') ?? defaultBulkTopic(clientId);
  return {
    maxMessages: int(value, 'maxMessages', 'bulk.', 1, 100_000, DEFAULTS.bulk.maxMessages),
    maxBytes: int(value, 'maxBytes', 'bulk.', 256, 256 * 1024 * 1024, DEFAULTS.bulk.maxBytes),
    topic,
  };
}

function resolveTls(value: unknown): ResolvedOptions['tls'] {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) fail('tls', 'an object { ca, cert, key, passphrase, rejectUnauthorized }', value);
  checkKeys(value, ['ca', 'cert', 'key', 'passphrase', 'rejectUnauthorized'], 'tls');
  const cert = pem(value, 'cert');
  const key = pem(value, 'key');
  if ((cert === undefined) !== (key === undefined)) fail('tls.cert', 'given together with tls.key (mTLS needs both)', '(hidden)');
  if (value.rejectUnauthorized !== undefined && typeof value.rejectUnauthorized !== 'boolean') {
    fail('tls.rejectUnauthorized', 'a boolean', value.rejectUnauthorized);
  }
  const tls: NonNullable<ResolvedOptions['tls']> = { rejectUnauthorized: (value.rejectUnauthorized as boolean | undefined) ?? true };
  const ca = pem(value, 'ca');
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  const passphrase = text(value, 'passphrase', 'tls.');
  if (passphrase !== undefined) tls.passphrase = passphrase;
  return tls;
}
