import { writeSync } from 'node:fs';

/**
 * The device's side of the line protocol `spawnDevice()` reads: one JSON object per line on stdout,
 * written synchronously, so a line printed before a SIGKILL is never lost in a stream buffer.
 * stdout is a non-blocking pipe: a burst (a tick's readings) can fill it (EAGAIN) until the reader
 * drains it, so the write is retried until the whole line is out.
 */
export function writeEventLine(event: Record<string, unknown>): void {
  const line = Buffer.from(`${JSON.stringify(event)}\n`);
  for (let written = 0; written < line.length; ) {
    try {
      written += writeSync(1, line, written);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}
