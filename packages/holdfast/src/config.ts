/**
 * loadConfig(): options for open() from a JSON file, HOLDFAST_* environment variables and explicit
 * overrides, with precedence defaults < file < env < overrides. Each layer is validated with the zod
 * schema on its own, so an error names the file or the variable at fault. Secrets may be given as
 * file paths; they are read here, before open(), never on publish()'s path.
 */
import { readFile } from 'node:fs/promises';
import { CONFIG_FILE_VAR, ENV_VARS, envLayer, envSource } from './config-env.js';
import { getPath, SECRET_PAIRS } from './config-paths.js';
import type { ConfigInput, ConfigLayer, LayerSource } from './config-schema.js';
import { ErrorCodes, HoldfastError } from './errors.js';
import { resolveOptions, type HoldfastOptions } from './options.js';

export type { ConfigInput } from './config-schema.js';
export { ENV_VARS } from './config-env.js';

export interface LoadConfigOptions {
  /** A JSON file of options (the shape of ConfigInput). @default process.env.HOLDFAST_CONFIG_FILE, else none */
  file?: string;
  /** Where HOLDFAST_* variables are read from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** Explicit options; they win over the file and the environment. @default {} */
  overrides?: ConfigInput;
}

/**
 * Builds options for open(). Fields no layer sets are left out, so open() applies its documented
 * defaults. Throws HoldfastError(INVALID_OPTION) naming the field, its source and what is allowed.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<HoldfastOptions> {
  const env = options.env ?? process.env;
  const file = options.file ?? (env[CONFIG_FILE_VAR] || undefined);
  // zod is loaded on first use: an app that never calls loadConfig() does not carry it.
  const { parseLayer } = await import('./config-schema.js');
  const layers: ConfigLayer[] = [];
  if (file !== undefined) layers.push(parseLayer(await readJson(file), fileSource(file)));
  layers.push(parseLayer(envLayer(env), envSource));
  if (options.overrides !== undefined) layers.push(parseLayer(options.overrides, overridesSource));

  let merged: Record<string, unknown> = {};
  for (const layer of layers) merged = mergeLayer(merged, layer);
  checkMerged(merged);
  const result = await readSecretFiles(merged);
  // The schema mirrors resolveOptions(); running it too means a divergence fails here, not in open().
  resolveOptions(result);
  return result;
}

const identity = (path: string): string => path;
const overridesSource: LayerSource = { label: 'overrides', fieldName: identity };
const fileSource = (file: string): LayerSource => ({ label: `config file ${file}`, fieldName: identity });

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw invalid('file', `config file ${file} cannot be read (${errnoCode(err)})`, 'a readable JSON file');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    // JSON.parse's message quotes the text, which may hold a password: only the position is kept.
    const at = /position (\d+)/.exec(String((err as Error).message))?.[1];
    throw invalid('file', `config file ${file} is not valid JSON${at ? ` (at position ${at})` : ''}`, 'a JSON object of options');
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/**
 * Deep-merges a higher-precedence layer over the result so far. A layer that gives a secret, either
 * inline or as a file, replaces both forms from lower layers (env's HOLDFAST_PASSWORD_FILE beats the
 * file's password).
 */
function mergeLayer(base: Record<string, unknown>, layer: ConfigLayer): Record<string, unknown> {
  const result = structuredCloneShallow(base);
  for (const [value, file] of SECRET_PAIRS) {
    if (getPath(layer, value) !== undefined || getPath(layer, file) !== undefined) {
      deletePath(result, value);
      deletePath(result, file);
    }
  }
  return deepMerge(result, layer as Record<string, unknown>);
}

function structuredCloneShallow(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = isPlainObject(v) ? structuredCloneShallow(v) : v;
  return out;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const current = base[key];
    base[key] = isPlainObject(value) && isPlainObject(current) ? deepMerge(current, value) : isPlainObject(value) ? structuredCloneShallow(value) : value;
  }
  return base;
}

function deletePath(obj: Record<string, unknown>, path: string): void {
  const parts = path.split('.');
  const parent = parts.length === 1 ? obj : getPath(obj, parts.slice(0, -1).join('.'));
  if (isPlainObject(parent)) delete parent[parts[parts.length - 1]!];
}

/** Rules across fields and layers, checked once everything is merged. */
function checkMerged(m: Record<string, unknown>): void {
  if (m.broker === undefined) throw missing('broker', 'a broker URL such as mqtts://broker.example:8883');
  if (m.clientId === undefined) throw missing('clientId', 'a non-empty string (it has no default: the broker keys the session by it)');
  const minMs = (getPath(m, 'reconnect.minMs') as number | undefined) ?? 1000;
  const maxMs = getPath(m, 'reconnect.maxMs') as number | undefined;
  if (maxMs !== undefined && maxMs < minMs) {
    throw invalid('reconnect.maxMs', `configuration: reconnect.maxMs (${maxMs}) must be at least reconnect.minMs (${minMs})`, `at least reconnect.minMs (${minMs})`);
  }
  const hasCert = getPath(m, 'tls.cert') !== undefined || getPath(m, 'tls.certFile') !== undefined;
  const hasKey = getPath(m, 'tls.key') !== undefined || getPath(m, 'tls.keyFile') !== undefined;
  if (hasCert !== hasKey) {
    const field = hasCert ? 'tls.key' : 'tls.cert';
    throw invalid(field, `configuration: ${field} (or ${field}File) must be given too: mTLS needs both a certificate and its key`, 'tls.cert and tls.key together');
  }
}

function missing(field: string, allowed: string): HoldfastError {
  const variable = [...Object.entries(ENV_VARS)].find(([, [path]]) => path === field)?.[0];
  return invalid(field, `configuration: ${field} is required (set it in the config file, ${variable ?? 'the environment'} or overrides); it must be ${allowed}`, allowed);
}

/** Replaces every `…File` field by the file's contents. */
async function readSecretFiles(m: Record<string, unknown>): Promise<HoldfastOptions> {
  const out = structuredCloneShallow(m);
  if (typeof out.passwordFile === 'string') {
    out.password = stripNewline(await readSecret('passwordFile', out.passwordFile, 'utf8'));
    delete out.passwordFile;
  }
  if (out.bulk === true) out.bulk = {};
  const tls = out.tls;
  if (isPlainObject(tls)) {
    for (const name of ['ca', 'cert', 'key'] as const) {
      const path = tls[`${name}File`];
      if (typeof path !== 'string') continue;
      tls[name] = await readSecret(`tls.${name}File`, path);
      delete tls[`${name}File`];
    }
    if (typeof tls.passphraseFile === 'string') {
      tls.passphrase = stripNewline(await readSecret('tls.passphraseFile', tls.passphraseFile, 'utf8'));
      delete tls.passphraseFile;
    }
  }
  return out as unknown as HoldfastOptions;
}

async function readSecret(field: string, path: string): Promise<Buffer>;
async function readSecret(field: string, path: string, encoding: 'utf8'): Promise<string>;
async function readSecret(field: string, path: string, encoding?: 'utf8'): Promise<Buffer | string> {
  try {
    const content = encoding ? await readFile(path, encoding) : await readFile(path);
    if (content.length === 0) throw Object.assign(new Error('empty'), { code: 'EMPTY' });
    return content;
  } catch (err) {
    throw invalid(field, `configuration: ${field} ${path} cannot be read (${errnoCode(err)})`, 'a readable, non-empty file');
  }
}

/** Secret files written by `echo` or an editor end in a newline that is not part of the secret. */
function stripNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}

function errnoCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'unreadable';
}

function invalid(field: string, message: string, allowed: string): HoldfastError {
  return new HoldfastError(ErrorCodes.INVALID_OPTION, message, { details: { field, allowed } });
}
