import type { Argv } from 'yargs';
import type { CacheInspection, CachedMessage, InspectOptions } from 'holdfast';
import { parseChoice, parseText } from '../args/values.js';
import type { RunContext } from './context.js';

const CACHE_DIR_FLAG = { 'cache-dir': { type: 'string', default: './holdfast-cache', describe: 'Directory of the publisher’s cache' } } as const;
const KEY_FLAG = {
  'cache-key-file': { type: 'string', describe: 'File holding the key of an encrypted cache (64 hex characters, base64 or 32 raw bytes)' },
} as const;

/** The key file, validated here; the library reads it (and never prints it). */
function inspectOptions(argv: { 'cache-key-file'?: unknown }): InspectOptions {
  const cacheKeyFile = parseText('--cache-key-file', argv['cache-key-file']);
  return cacheKeyFile === undefined ? {} : { cacheKeyFile };
}

function formatAge(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  return s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

function printInspection(r: CacheInspection): void {
  const lines = [
    `cache        ${r.path}`,
    `messages     ${r.messages}`,
    `bytes        ${r.bytes}`,
    `oldest age   ${r.messages > 0 ? formatAge(r.oldestAgeMs) : '-'}`,
    `by priority  ${Object.entries(r.byPriority).filter(([, n]) => n > 0).map(([p, n]) => `p${p}: ${n}`).join(', ') || '-'}`,
    `dead letters ${r.deadLetters}`,
    `epoch        ${r.epoch}`,
    `quarantined  ${r.quarantined.length === 0 ? '-' : r.quarantined.join(', ')}`,
    `intake log   ${r.intakeLog.segments === 0 ? '-' : `${r.intakeLog.segments} segment(s), ${r.intakeLog.bytes} bytes (replayed into the cache by the publisher's next start)`}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** A payload as JSON: UTF-8 text when it is valid text, base64 otherwise (with the encoding named). */
function payloadFields(payload: string | Uint8Array): { payload: string; encoding: 'utf8' | 'base64' } {
  if (typeof payload === 'string') return { payload, encoding: 'utf8' };
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? { payload: text, encoding: 'utf8' } : { payload: bytes.toString('base64'), encoding: 'base64' };
}

/** Writes with backpressure, so exporting a million messages into a slow pipe stays bounded in memory. */
async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(`${line}\n`)) await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
}

async function runExport(dir: string, dead: boolean, options: InspectOptions): Promise<void> {
  const { exportCache, exportDeadLetters } = await import('holdfast');
  const source: AsyncIterable<CachedMessage & { reason?: string }> = dead ? exportDeadLetters(dir, options) : exportCache(dir, options);
  for await (const m of source) {
    await writeLine(JSON.stringify({ seq: m.seq, topic: m.topic, ...payloadFields(m.payload), priority: m.priority, ts: m.ts, ...(m.reason !== undefined && { reason: m.reason }) }));
  }
}

export function registerCache(y: Argv, ctx: RunContext): Argv {
  return y.command('cache', 'Look inside a publisher’s cache (read-only, safe while it runs)', (c) =>
    c
      .command(
        'inspect',
        'Show message count, bytes, oldest age, counts by priority, dead letters and quarantined files',
        (b) =>
          b
            .options({ ...CACHE_DIR_FLAG, ...KEY_FLAG, json: { type: 'boolean', default: false, describe: 'Print one JSON object' } })
            .example('$0 cache inspect --cache-dir /var/lib/holdfast', 'A readable summary')
            .example('$0 cache inspect --cache-dir /var/lib/holdfast --cache-key-file /etc/holdfast/cache.key', 'An encrypted cache')
            .example('$0 cache inspect --cache-dir ./holdfast-cache --json', 'The same as JSON, for scripts and monitoring'),
        async (argv) => {
          const { inspectCache } = await import('holdfast');
          const report = await inspectCache(parseText('--cache-dir', argv['cache-dir']) ?? './holdfast-cache', inspectOptions(argv));
          if (argv.json) process.stdout.write(`${JSON.stringify(report)}\n`);
          else printInspection(report);
          ctx.exitCode = 0;
        },
      )
      .command(
        'export',
        'Write the cached messages, oldest first, one JSON object per line',
        (b) =>
          b
            .options({
              ...CACHE_DIR_FLAG,
              ...KEY_FLAG,
              format: { type: 'string', default: 'jsonl', describe: 'Output format: jsonl ({seq, topic, payload, encoding, priority, ts} per line)' },
              'dead-letters': { type: 'boolean', default: false, describe: 'Export the dead letters (messages the broker refused) with their reason instead' },
            })
            .example('$0 cache export --cache-dir /var/lib/holdfast --format jsonl > backlog.jsonl', 'Save the backlog')
            .example('$0 cache export --cache-dir /var/lib/holdfast --dead-letters', 'What the broker refused, and why'),
        async (argv) => {
          parseChoice('--format', argv.format, ['jsonl']);
          await runExport(parseText('--cache-dir', argv['cache-dir']) ?? './holdfast-cache', argv['dead-letters'], inspectOptions(argv));
          ctx.exitCode = 0;
        },
      )
      .demandCommand(1, 'Name a cache command: inspect or export.'),
  );
}
