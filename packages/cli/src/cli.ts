import yargs from 'yargs';

/** Builds the yargs parser; returns the process exit code. */
export async function run(argv: string[]): Promise<number> {
  let exitCode = 0;
  await yargs(argv)
    .scriptName('holdfast')
    .usage('$0 <command> [options]')
    .command('version', 'Print the version', () => undefined, () => console.log('holdfast 0.1.0'))
    .demandCommand(1, 'Name a command; see --help.')
    .strict()
    .fail((message, err) => {
      console.error(message ?? err?.message);
      exitCode = 2;
    })
    .help()
    .parseAsync();
  return exitCode;
}
