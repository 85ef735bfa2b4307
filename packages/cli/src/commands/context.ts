/** What a command hands back to the CLI runner. */
export interface RunContext {
  exitCode: number;
}
