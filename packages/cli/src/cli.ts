import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { UsageError } from './args/usage-error.js';
import { registerAudit } from './commands/audit.js';
import { registerCache } from './commands/cache.js';
import type { RunContext } from './commands/context.js';
import { registerDemo } from './commands/demo.js';
import { registerPublish } from './commands/publish.js';

/** Exit codes: 0 success, 1 a failure at run time (or an audit with gaps), 2 bad arguments. */
const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

/**
 * The library is loaded only by the commands that need it (a Raspberry Pi pays for every module at
 * start-up), so its errors are recognised by name and code rather than by class.
 */
function isHoldfastError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && err.name === 'HoldfastError' && typeof (err as { code?: unknown }).code === 'string';
}

/** The package's own version: yargs cannot find package.json from an ES module and says 'unknown'. */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

/** yargs itself rejected the arguments (unknown flag, missing command). */
class ArgumentsRejected extends Error {}

function report(err: unknown, ctx: RunContext): void {
  if (err instanceof UsageError || err instanceof ArgumentsRejected) {
    console.error(`holdfast: ${err.message} (see --help)`);
    ctx.exitCode = EXIT_USAGE;
  } else if (isHoldfastError(err)) {
    console.error(`holdfast: ${err.message} [${err.code}]`);
    // A bad option from --config or HOLDFAST_* is a usage error too, just not on the command line.
    ctx.exitCode = err.code === 'HOLDFAST_INVALID_OPTION' ? EXIT_USAGE : EXIT_FAILURE;
  } else {
    console.error(`holdfast: ${err instanceof Error ? err.message : String(err)}`);
    ctx.exitCode = EXIT_FAILURE;
  }
}

/** Parses `argv`, runs the command and returns the process exit code. */
export async function run(argv: string[]): Promise<number> {
  const ctx: RunContext = { exitCode: 0 };
  let parser = yargs(argv)
    .scriptName('holdfast')
    .usage('$0 <command> [options]\n\nAn MQTT QoS 2 publisher for edge devices that never loses an accepted reading.')
    .wrap(Math.min(120, process.stdout.columns || 100));
  parser = registerDemo(parser, ctx);
  parser = registerPublish(parser, ctx);
  parser = registerCache(parser, ctx);
  parser = registerAudit(parser, ctx);
  parser = parser
    .example('$0 demo', 'See it survive link cuts and a power cut, on an embedded broker')
    .example('$0 publish --broker mqtt://broker:1883 --client-id dev-001', 'Publish simulated readings')
    .example('$0 audit --broker mqtt://broker:1883 --topic "sensors/#" --duration 10m', 'Prove nothing was lost')
    .example('$0 cache inspect --cache-dir ./holdfast-cache', 'What is waiting in the cache')
    .demandCommand(1, 'Name a command: demo, publish, cache or audit.')
    .recommendCommands()
    .strict()
    .fail((message, err) => {
      // Throwing stops yargs before any command runs; the catch below prints it once.
      throw err ?? new ArgumentsRejected(message);
    })
    .version(packageVersion())
    .help()
    .alias('help', 'h');
  try {
    await parser.parseAsync();
  } catch (err) {
    report(err, ctx);
  }
  return ctx.exitCode;
}
