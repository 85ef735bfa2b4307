/**
 * The zod schema for one layer of configuration (the JSON file, the environment, or explicit
 * overrides), and the translation of zod issues into HoldfastError(INVALID_OPTION) naming the field,
 * where it came from and what is allowed. Ranges match resolveOptions() in options.ts.
 */
import { z } from 'zod';
import { ErrorCodes, HoldfastError } from './errors.js';
import { validateBrokerUrl } from './options.js';
import { getPath, SECRET_PAIRS } from './config-paths.js';

function int(min: number, max: number) {
  const allowed = `an integer from ${min} to ${max}`;
  return z.number({ error: allowed }).int({ error: allowed }).min(min, { error: allowed }).max(max, { error: allowed });
}

const nonEmpty = (what = 'a non-empty string') => z.string({ error: what }).min(1, { error: what });
const bool = z.boolean({ error: 'a boolean (true or false)' });
const pem = z.union([z.string(), z.instanceof(Buffer)], { error: 'a PEM string or Buffer' });
const filePath = nonEmpty('a non-empty file path');
const OBJECT = { error: 'an object' };

function isBrokerUrl(value: string): boolean {
  try {
    validateBrokerUrl(value);
    return true;
  } catch {
    return false;
  }
}

const tlsSchema = z.strictObject(
  {
  ca: pem.optional(),
  caFile: filePath.optional(),
  cert: pem.optional(),
  certFile: filePath.optional(),
  key: pem.optional(),
  keyFile: filePath.optional(),
  passphrase: nonEmpty().optional(),
  passphraseFile: filePath.optional(),
  rejectUnauthorized: bool.optional(),
});

const bulkSchema = z.union(
  [
    z.boolean(),
    z.strictObject({
      maxMessages: int(1, 100_000).optional(),
      maxBytes: int(256, 256 * 1024 * 1024).optional(),
      topic: nonEmpty().optional(),
    }, OBJECT),
  ],
  { error: 'false, true or { maxMessages, maxBytes, topic }' },
);


const healthSchema = z.union(
  [z.literal(false), z.strictObject({ port: int(0, 65_535).optional(), host: nonEmpty().optional() }, OBJECT)],
  { error: 'false or { port, host }' },
);

export const layerSchema = z
  .strictObject({
    broker: nonEmpty()
      .refine(isBrokerUrl, { error: 'a URL with scheme mqtt:, mqtts:, ws: or wss:, a host, and no credentials in it' })
      .optional(),
    clientId: nonEmpty()
      .refine((v) => Buffer.byteLength(v) <= 65_535, { error: 'a non-empty string of at most 65535 bytes' })
      .optional(),
    cacheDir: nonEmpty().optional(),
    qos: z.union([z.literal(1), z.literal(2)], { error: '1 or 2' }).optional(),
    durability: z.enum(['spill', 'journal'], { error: "'spill' or 'journal'" }).optional(),
    timeoutMs: int(10, 3_600_000).optional(),
    watchdogMs: int(10, 24 * 3_600_000).optional(),
    deadLetterAfterDisconnects: int(1, 1000).optional(),
    highWater: z.strictObject({ messages: int(1, 10_000_000).optional(), bytes: int(1024, 2 ** 31).optional() }, OBJECT).optional(),
    maxCache: z.strictObject({ messages: int(1, 1_000_000_000).optional(), bytes: int(4096, 2 ** 40).optional() }, OBJECT).optional(),
    bulk: bulkSchema.optional(),
    reconnect: z.strictObject({ minMs: int(10, 3_600_000).optional(), maxMs: int(10, 3_600_000).optional() }, OBJECT).optional(),
    session: z.strictObject({ clean: bool.optional(), expirySec: int(0, 0xffffffff).optional() }, OBJECT).optional(),
    protocolVersion: z.union([z.literal(4), z.literal(5)], { error: '4 (MQTT 3.1.1) or 5' }).optional(),
    keepaliveSec: int(1, 65_535).optional(),
    connectTimeoutMs: int(100, 600_000).optional(),
    closeTimeoutMs: int(100, 600_000).optional(),
    tls: tlsSchema.optional(),
    username: nonEmpty().optional(),
    password: nonEmpty().optional(),
    passwordFile: filePath.optional(),
    // 64 hex characters or base64 (open() checks it is 32 bytes); the file is read by the worker.
    cacheKey: nonEmpty().optional(),
    cacheKeyFile: filePath.optional(),
    health: healthSchema.optional(),
    logLevel: z.enum(['silent', 'fatal', 'error', 'warn', 'info', 'debug'], { error: "one of 'silent', 'fatal', 'error', 'warn', 'info', 'debug'" }).optional(),
  }, { error: 'a JSON object of options' })
  .superRefine((layer, ctx) => {
    for (const [value, file] of SECRET_PAIRS) {
      if (getPath(layer, value) !== undefined && getPath(layer, file) !== undefined) {
        ctx.addIssue({ code: 'custom', path: file.split('.'), message: `given with ${value}: set one of them, not both`, params: { sentence: true } });
      }
    }
  });

/** One layer of configuration as a user writes it. Every field is optional. */
export type ConfigInput = z.input<typeof layerSchema>;
export type ConfigLayer = z.output<typeof layerSchema>;

/** Describes where a layer came from, and how to name a field of it in an error. */
export interface LayerSource {
  /** e.g. "config file /etc/holdfast.json" */
  label: string;
  /** The name a user would recognise: a dotted path, or the environment variable it came from. */
  fieldName(path: string): string;
}


/** Values never shown in an error: they are secrets, or may carry one (a URL with credentials). */
function isSecretField(path: string, value: unknown): boolean {
  if (path === 'password' || path === 'cacheKey' || path.startsWith('tls.')) return !path.endsWith('File') && path !== 'tls.rejectUnauthorized';
  return path === 'broker' && typeof value === 'string' && value.includes('@');
}

function show(path: string, value: unknown): string {
  if (isSecretField(path, value)) return '(hidden)';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** Validates one layer. Throws HoldfastError(INVALID_OPTION) naming the first bad field; all are in details. */
export function parseLayer(raw: unknown, source: LayerSource): ConfigLayer {
  const result = layerSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const base = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? '';
      const field = base ? `${base}.${key}` : key;
      return { field: source.fieldName(field), text: `${source.fieldName(field)} is not a known option` };
    }
    const field = base || '(root)';
    const got = base ? show(base, getPath(raw, base)) : show('', raw);
    const sentence = issue.code === 'custom' && issue.params?.sentence === true;
    const text = sentence ? `${source.fieldName(field)} ${issue.message}` : `${source.fieldName(field)} must be ${issue.message}; got ${got}`;
    return { field: source.fieldName(field), text, allowed: sentence ? `only one of the two` : issue.message };
  });
  const first = problems[0]!;
  throw new HoldfastError(ErrorCodes.INVALID_OPTION, `${source.label}: ${first.text}`, {
    details: { field: first.field, source: source.label, allowed: first.allowed, problems: problems.map((p) => p.text) },
  });
}
