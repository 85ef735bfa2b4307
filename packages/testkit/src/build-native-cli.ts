/**
 * `pnpm --filter @holdfast/testkit run build:native`: builds the testkit's C tools now (CI does, before
 * the tests), and fails naming what is missing, where the tests would only skip.
 */
import { powerLossUnavailable } from './power-loss.js';

const why = powerLossUnavailable();
if (why !== undefined) {
  process.stderr.write(`${why}\n`);
  process.exitCode = 1;
} else {
  process.stdout.write('testkit native tools built: powerloss-fs\n');
}
