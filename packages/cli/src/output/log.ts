/**
 * Structured JSON logs, one object per line, for journald and log shippers. Callers pass counters
 * and states only: payloads and secrets never go through here.
 */
export type Level = 'info' | 'warn' | 'error';

export function logJson(level: Level, msg: string, fields: Record<string, unknown> = {}, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}
