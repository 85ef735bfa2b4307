/** A bad command-line argument: names the flag and what it accepts. The CLI prints it and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';

  constructor(flag: string, allowed: string, got?: unknown) {
    super(`${flag} must be ${allowed}${got === undefined ? '' : `; got ${describe(got)}`}`);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return String(value);
}
