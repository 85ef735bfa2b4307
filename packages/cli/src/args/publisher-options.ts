import { accessSync, constants, readFileSync } from 'node:fs';
import { HoldfastError, loadConfig, type ConfigInput, type HoldfastOptions } from 'holdfast';
import { parseProtocol } from './connection.js';
import type { PublisherArgs } from './publisher-flags.js';
import { UsageError } from './usage-error.js';
import { parseChoice, parseDuration, parseText } from './values.js';

/** Reads `--config` for the few fields the CLI needs before the library loads it (client id, cache dir). */
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
  } catch {
    // JSON.parse quotes the text, which may hold a password: name the file only.
    throw new UsageError('--config', 'a file of valid JSON', path);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError('--config', 'a JSON object of holdfast options', path);
  return { ...value };
}

/** A setting from its flag, else its HOLDFAST_* variable, else the config file. */
export function layered(flag: string, value: string | undefined, envVar: string, config: Record<string, unknown>, field: string): string | undefined {
  const fromFlag = parseText(flag, value);
  if (fromFlag !== undefined) return fromFlag;
  const fromEnv = process.env[envVar];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const fromConfig = config[field];
  return typeof fromConfig === 'string' ? fromConfig : undefined;
}

/** A file flag must name a readable file; checked here so the error names the flag. */
function readableFile(flag: string, value: string | undefined, what: string): string | undefined {
  const path = parseText(flag, value);
  if (path === undefined) return undefined;
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new UsageError(flag, `a readable file holding ${what}`, `${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  return path;
}

/** Flags as loadConfig() overrides, mapped one by one: flags win over HOLDFAST_* variables and --config. */
export function publisherOverrides(args: PublisherArgs, clientId: string, cacheDir: string | undefined): ConfigInput {
  const overrides: ConfigInput = { clientId };
  const broker = parseText('--broker', args.broker);
  if (broker !== undefined) overrides.broker = broker;
  if (cacheDir !== undefined) overrides.cacheDir = cacheDir;
  const durability = parseChoice('--durability', args.durability, ['spill', 'journal']);
  if (durability !== undefined) overrides.durability = durability;
  const cacheKeyFile = readableFile('--cache-key-file', args['cache-key-file'], 'the cache key');
  if (cacheKeyFile !== undefined) overrides.cacheKeyFile = cacheKeyFile;
  const qos = parseChoice('--qos', args.qos, ['1', '2']);
  if (qos !== undefined) overrides.qos = qos === '1' ? 1 : 2;
  if (args.timeout !== undefined) overrides.timeoutMs = parseDuration('--timeout', args.timeout, { minMs: 10, maxMs: 3_600_000 });
  const protocolVersion = parseProtocol(args.protocol);
  if (protocolVersion !== undefined) overrides.protocolVersion = protocolVersion;
  const username = parseText('--username', args.username);
  if (username !== undefined) overrides.username = username;
  const passwordFile = readableFile('--password-file', args['password-file'], 'the password');
  if (passwordFile !== undefined) overrides.passwordFile = passwordFile;
  if ((args.cert === undefined) !== (args.key === undefined)) throw new UsageError('--cert', 'given together with --key (mTLS needs both)');
  const caFile = readableFile('--ca', args.ca, 'a PEM CA certificate');
  const certFile = readableFile('--cert', args.cert, 'a PEM client certificate');
  const keyFile = readableFile('--key', args.key, 'a PEM private key');
  if (caFile !== undefined || certFile !== undefined) {
    overrides.tls = { ...(caFile !== undefined && { caFile }), ...(certFile !== undefined && { certFile }), ...(keyFile !== undefined && { keyFile }) };
  }
  return overrides;
}

const FIELD_FLAGS: Record<string, string> = {
  broker: '--broker',
  clientId: '--client-id',
  cacheDir: '--cache-dir',
  durability: '--durability',
  cacheKeyFile: '--cache-key-file',
  qos: '--qos',
  timeoutMs: '--timeout',
  protocolVersion: '--protocol',
  username: '--username',
  passwordFile: '--password-file',
  'tls.caFile': '--ca',
  'tls.certFile': '--cert',
  'tls.keyFile': '--key',
};

/**
 * The library options for one publisher: defaults < --config file < HOLDFAST_* environment < flags.
 * A bad value given by a flag is reported against that flag.
 */
export async function loadPublisherOptions(args: PublisherArgs, clientId: string, cacheDir: string | undefined): Promise<HoldfastOptions> {
  const overrides = publisherOverrides(args, clientId, cacheDir);
  try {
    return await loadConfig({ ...(args.config !== undefined && { file: args.config }), overrides });
  } catch (err) {
    const details = err instanceof HoldfastError ? err.details : undefined;
    const field = typeof details?.field === 'string' ? details.field : '';
    if (details?.source === 'overrides' && FIELD_FLAGS[field] !== undefined) {
      throw new UsageError(FIELD_FLAGS[field]!, typeof details.allowed === 'string' ? details.allowed : 'valid', getPathText(overrides, field));
    }
    throw err;
  }
}

function getPathText(obj: Record<string, unknown>, path: string): string | undefined {
  let cur: unknown = obj;
  for (const part of path.split('.')) cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[part] : undefined;
  return typeof cur === 'string' && !path.toLowerCase().includes('password') ? cur : undefined;
}
