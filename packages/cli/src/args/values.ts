import { UsageError } from './usage-error.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `500ms`, `5s`, `2m`, `1h` (a bare number means seconds) into milliseconds. */
export function parseDuration(flag: string, value: unknown, { minMs = 1, maxMs = 7 * 24 * 3_600_000 } = {}): number {
  const text = typeof value === 'number' ? String(value) : value;
  const allowed = `a duration such as 500ms, 5s, 2m or 1h, from ${minMs} ms to ${maxMs / 3_600_000} h`;
  if (typeof text !== 'string') throw new UsageError(flag, allowed, value);
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new UsageError(flag, allowed, text);
  const ms = Math.round(Number(match[1]) * (UNITS[match[2] ?? 's'] ?? 1000));
  if (ms < minMs || ms > maxMs) throw new UsageError(flag, allowed, text);
  return ms;
}

/** An integer flag within bounds; undefined stays undefined (the library default applies). */
export function parseInteger(flag: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(flag, `an integer from ${min} to ${max}`, value);
  }
  return n;
}

/** One of a fixed set of strings. */
export function parseChoice<T extends string>(flag: string, value: unknown, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  const found = choices.find((c) => c === value);
  if (found === undefined) throw new UsageError(flag, `one of ${choices.join(', ')}`, value);
  return found;
}

/** A non-empty string flag. */
export function parseText(flag: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(flag, 'a non-empty string', value);
  return value;
}
