/**
 * The HOLDFAST_* environment variables and the option each one sets. Values arrive as strings; this
 * file only converts numbers and booleans, the schema does the validating. An empty variable counts
 * as unset (container tooling often defines variables it has no value for).
 */
import type { LayerSource } from './config-schema.js';
import { ErrorCodes, HoldfastError } from './errors.js';

type Kind = 'string' | 'int' | 'bool' | 'bulk' | 'health';

/** Variable name → option path and how to read it. README's table is this table. */
export const ENV_VARS: Readonly<Record<string, readonly [path: string, kind: Kind]>> = {
  HOLDFAST_BROKER: ['broker', 'string'],
  HOLDFAST_CLIENT_ID: ['clientId', 'string'],
  HOLDFAST_CACHE_DIR: ['cacheDir', 'string'],
  HOLDFAST_QOS: ['qos', 'int'],
  HOLDFAST_DURABILITY: ['durability', 'string'],
  HOLDFAST_TIMEOUT_MS: ['timeoutMs', 'int'],
  HOLDFAST_HIGH_WATER_MESSAGES: ['highWater.messages', 'int'],
  HOLDFAST_HIGH_WATER_BYTES: ['highWater.bytes', 'int'],
  HOLDFAST_WATCHDOG_MS: ['watchdogMs', 'int'],
  HOLDFAST_DEAD_LETTER_AFTER_DISCONNECTS: ['deadLetterAfterDisconnects', 'int'],
  HOLDFAST_MAX_CACHE_MESSAGES: ['maxCache.messages', 'int'],
  HOLDFAST_MAX_CACHE_BYTES: ['maxCache.bytes', 'int'],
  HOLDFAST_BULK: ['bulk', 'bulk'],
  HOLDFAST_BULK_MAX_MESSAGES: ['bulk.maxMessages', 'int'],
  HOLDFAST_BULK_MAX_BYTES: ['bulk.maxBytes', 'int'],
  HOLDFAST_BULK_TOPIC: ['bulk.topic', 'string'],
  HOLDFAST_RECONNECT_MIN_MS: ['reconnect.minMs', 'int'],
  HOLDFAST_RECONNECT_MAX_MS: ['reconnect.maxMs', 'int'],
  HOLDFAST_SESSION_CLEAN: ['session.clean', 'bool'],
  HOLDFAST_SESSION_EXPIRY_SEC: ['session.expirySec', 'int'],
  HOLDFAST_PROTOCOL_VERSION: ['protocolVersion', 'int'],
  HOLDFAST_KEEPALIVE_SEC: ['keepaliveSec', 'int'],
  HOLDFAST_CONNECT_TIMEOUT_MS: ['connectTimeoutMs', 'int'],
  HOLDFAST_CLOSE_TIMEOUT_MS: ['closeTimeoutMs', 'int'],
  HOLDFAST_USERNAME: ['username', 'string'],
  HOLDFAST_PASSWORD: ['password', 'string'],
  HOLDFAST_PASSWORD_FILE: ['passwordFile', 'string'],
  HOLDFAST_TLS_CA_FILE: ['tls.caFile', 'string'],
  HOLDFAST_TLS_CERT_FILE: ['tls.certFile', 'string'],
  HOLDFAST_TLS_KEY_FILE: ['tls.keyFile', 'string'],
  HOLDFAST_TLS_PASSPHRASE: ['tls.passphrase', 'string'],
  HOLDFAST_TLS_PASSPHRASE_FILE: ['tls.passphraseFile', 'string'],
  HOLDFAST_TLS_REJECT_UNAUTHORIZED: ['tls.rejectUnauthorized', 'bool'],
  HOLDFAST_CACHE_KEY: ['cacheKey', 'string'],
  HOLDFAST_CACHE_KEY_FILE: ['cacheKeyFile', 'string'],
  HOLDFAST_HEALTH: ['health', 'health'],
  HOLDFAST_HEALTH_PORT: ['health.port', 'int'],
  HOLDFAST_HEALTH_HOST: ['health.host', 'string'],
  HOLDFAST_LOG_LEVEL: ['logLevel', 'string'],
};

/** Names the config file when loadConfig() is not given one. */
export const CONFIG_FILE_VAR = 'HOLDFAST_CONFIG_FILE';

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** Strings the schema would reject are passed through unchanged, so its error shows what was given. */
function convert(value: string, kind: Kind): unknown {
  const v = value.trim();
  switch (kind) {
    case 'string':
      return value;
    case 'int':
      return /^[+-]?\d+$/.test(v) ? Number(v) : value;
    case 'bool':
      return TRUE.has(v.toLowerCase()) ? true : FALSE.has(v.toLowerCase()) ? false : value;
    case 'bulk':
    case 'health':
      return TRUE.has(v.toLowerCase()) ? {} : FALSE.has(v.toLowerCase()) ? false : value;
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = target;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    // A parent that holds a bad value (HOLDFAST_BULK=maybe) keeps it, so the schema reports it.
    if (next !== undefined && (typeof next !== 'object' || next === null)) return;
    if (next === undefined) cur[part] = {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

/**
 * The options the environment sets, as a raw layer for the schema. Unknown HOLDFAST_* variables are
 * ignored: other tools share the prefix (the testkit's HOLDFAST_REQUIRE_MOSQUITTO, for one).
 */
export function envLayer(env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const layer: Record<string, unknown> = {};
  for (const [name, [path, kind]] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    for (const parent of ['bulk', 'health'] as const) {
      if (!path.startsWith(`${parent}.`) || layer[parent] !== false) continue;
      const switchVar = `HOLDFAST_${parent.toUpperCase()}`;
      throw new HoldfastError(ErrorCodes.INVALID_OPTION, `environment: ${name} is set but ${switchVar} turns ${parent} off; unset one of them`, {
        details: { field: name, source: 'environment', allowed: `unset while ${switchVar} is false` },
      });
    }
    setPath(layer, path, convert(value, kind));
  }
  return layer;
}

const PATH_TO_VAR = new Map(Object.entries(ENV_VARS).map(([name, [path]]) => [path, name]));

export const envSource: LayerSource = {
  label: 'environment',
  fieldName: (path) => PATH_TO_VAR.get(path) ?? (path === '' || path === '(root)' ? 'environment' : `HOLDFAST_* (${path})`),
};
