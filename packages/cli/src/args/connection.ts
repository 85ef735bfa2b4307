import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { UsageError } from './usage-error.js';
import { parseChoice, parseText } from './values.js';

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

/** A flag, else its HOLDFAST_* variable (as the publisher's config reads them), else undefined. */
function flagOrEnv(flag: string, value: string | undefined, envVar: string): string | undefined {
  return parseText(flag, value) ?? (process.env[envVar] || undefined);
}

/** Resolves the connection flags of a plain MQTT client (the audit's subscriber). */
export function resolveConnection(args: ConnectionArgs): Connection {
  const broker = flagOrEnv('--broker', args.broker, 'HOLDFAST_BROKER');
  if (broker === undefined) throw new UsageError('--broker', 'given (or HOLDFAST_BROKER): a broker URL such as mqtt://broker:1883');
  if ((args.cert === undefined) !== (args.key === undefined)) throw new UsageError('--cert', 'given together with --key (mTLS needs both)');
  const ca = readPem('--ca', args.ca);
  const cert = readPem('--cert', args.cert);
  const key = readPem('--key', args.key);
  const tls = ca === undefined && cert === undefined ? undefined : { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
  return {
    broker,
    clientId: parseText('--client-id', args['client-id']),
    protocolVersion: parseProtocol(args.protocol),
    username: flagOrEnv('--username', args.username, 'HOLDFAST_USERNAME'),
    password: readPassword(args['password-file']),
    tls,
  };
}

/** The default client id names the host, so two devices never share a broker session by accident. */
export function defaultClientId(prefix: string): string {
  return `${prefix}-${hostname().replace(/[^A-Za-z0-9_-]/g, '') || 'host'}`;
}

