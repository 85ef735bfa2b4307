import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { HoldfastOptions } from 'holdfast';
import { UsageError } from './usage-error.js';
import { parseChoice, parseDuration, parseText } from './values.js';

/**
 * The flags every command that talks to a broker shares. Numbers are taken as strings so a bad value
 * gets our message (naming the flag) rather than a silent NaN.
 */
export const CONNECTION_FLAGS = {
  broker: { type: 'string', describe: 'Broker URL (mqtt:, mqtts:, ws:, wss:), e.g. mqtt://broker:1883' },
  'client-id': { type: 'string', describe: 'MQTT client id; the broker keys the persistent session by it' },
  protocol: { type: 'string', describe: 'MQTT protocol version: 5, or 4 for 3.1.1' },
  username: { type: 'string', describe: 'Broker username' },
  'password-file': { type: 'string', describe: 'File holding the broker password (or set HOLDFAST_PASSWORD); never pass a password on the command line' },
  ca: { type: 'string', describe: 'PEM file of the CA that signed the broker certificate' },
  cert: { type: 'string', describe: 'PEM client certificate, for mTLS (with --key)' },
  key: { type: 'string', describe: 'PEM client private key, for mTLS (with --cert)' },
} as const;

/** The publisher's own flags on top of the connection. */
export const PUBLISHER_FLAGS = {
  'cache-dir': { type: 'string', describe: 'Directory of the LMDB cache (created 0700)' },
  durability: { type: 'string', describe: "'spill' (flash written only during trouble) or 'journal' (every reading committed before sending)" },
  qos: { type: 'string', describe: 'QoS for every message: 2, or 1 for brokers without QoS 2' },
  timeout: { type: 'string', describe: 'How long to wait for PUBCOMP before spilling to the cache, e.g. 10s' },
  config: { type: 'string', describe: 'JSON file of library options (see the holdfast README); flags override it' },
} as const;

export interface ConnectionArgs {
  broker?: string | undefined;
  'client-id'?: string | undefined;
  protocol?: string | undefined;
  username?: string | undefined;
  'password-file'?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

export interface PublisherArgs extends ConnectionArgs {
  'cache-dir'?: string | undefined;
  durability?: string | undefined;
  qos?: string | undefined;
  timeout?: string | undefined;
  config?: string | undefined;
}

/** The connection settings, resolved from flags, files and HOLDFAST_PASSWORD. Secrets never reach logs. */
export interface Connection {
  broker: string;
  clientId: string | undefined;
  protocolVersion: 4 | 5 | undefined;
  username: string | undefined;
  password: string | undefined;
  tls: { ca?: string; cert?: string; key?: string } | undefined;
}

function readPem(flag: string, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(flag, 'a readable PEM file', `${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}

function readPassword(path: string | undefined): string | undefined {
  if (path === undefined) return process.env.HOLDFAST_PASSWORD || undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError('--password-file', 'a readable file holding the password', `${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  // Editors and `echo` add a trailing newline that is not part of the password.
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0) throw new UsageError('--password-file', 'a file holding a non-empty password', path);
  return password;
}

export function parseProtocol(value: unknown): 4 | 5 | undefined {
  const choice = parseChoice('--protocol', value, ['4', '5']);
  return choice === undefined ? undefined : choice === '4' ? 4 : 5;
}

/** Resolves the connection flags; `brokerFallback` lets a config file supply the broker. */
export function resolveConnection(args: ConnectionArgs, brokerFallback?: string): Connection {
  const broker = parseText('--broker', args.broker) ?? brokerFallback;
  if (broker === undefined) throw new UsageError('--broker', 'given (a broker URL such as mqtt://broker:1883)');
  if ((args.cert === undefined) !== (args.key === undefined)) throw new UsageError('--cert', 'given together with --key (mTLS needs both)');
  const ca = readPem('--ca', args.ca);
  const cert = readPem('--cert', args.cert);
  const key = readPem('--key', args.key);
  const tls = ca === undefined && cert === undefined ? undefined : { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
  return {
    broker,
    clientId: parseText('--client-id', args['client-id']),
    protocolVersion: parseProtocol(args.protocol),
    username: parseText('--username', args.username),
    password: readPassword(args['password-file']),
    tls,
  };
}

/** The default client id names the host, so two devices never share a broker session by accident. */
export function defaultClientId(prefix: string): string {
  return `${prefix}-${hostname().replace(/[^A-Za-z0-9_-]/g, '') || 'host'}`;
}

/** Reads `--config`: a JSON object of library options. open() validates every field it holds. */
export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError('--config', 'a readable JSON file', `${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError('--config', `a JSON file (${(err as Error).message})`, path);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError('--config', 'a JSON object of holdfast options', path);
  return { ...value };
}

/**
 * Library options for one publisher: the config file first, then every flag that was given, mapped
 * one by one. Returns a plain record: open() validates it and names any bad field.
 */
export function publisherOptions(args: PublisherArgs, clientId: string, cacheDir: string | undefined): Record<string, unknown> {
  const config = readConfigFile(args.config);
  const conn = resolveConnection(args, typeof config.broker === 'string' ? config.broker : undefined);
  const options: Record<string, unknown> = { ...config, broker: conn.broker, clientId };
  const dir = cacheDir ?? parseText('--cache-dir', args['cache-dir']);
  if (dir !== undefined) options.cacheDir = dir;
  const durability = parseChoice('--durability', args.durability, ['spill', 'journal']);
  if (durability !== undefined) options.durability = durability;
  const qos = parseChoice('--qos', args.qos, ['1', '2']);
  if (qos !== undefined) options.qos = qos === '1' ? 1 : 2;
  if (args.timeout !== undefined) options.timeoutMs = parseDuration('--timeout', args.timeout, { minMs: 10, maxMs: 3_600_000 });
  if (conn.protocolVersion !== undefined) options.protocolVersion = conn.protocolVersion;
  if (conn.username !== undefined) options.username = conn.username;
  if (conn.password !== undefined) options.password = conn.password;
  if (conn.tls !== undefined) options.tls = { ...(isRecord(config.tls) ? config.tls : {}), ...conn.tls };
  return options;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The client id from --client-id, else the config file. */
export function configuredClientId(args: PublisherArgs): string | undefined {
  const fromFlag = parseText('--client-id', args['client-id']);
  if (fromFlag !== undefined) return fromFlag;
  const fromConfig = readConfigFile(args.config).clientId;
  return typeof fromConfig === 'string' ? fromConfig : undefined;
}

/** A HoldfastOptions from the record publisherOptions() built; open() re-validates every field at runtime. */
export function asHoldfastOptions(options: Record<string, unknown>): HoldfastOptions {
  return options as unknown as HoldfastOptions;
}
