/**
 * `pnpm --filter @holdfast/testkit run build:powerloss`: builds the power-loss layer now (CI does, before
 * the tests), and fails naming what is missing, where the tests would only skip.
 */
import { powerLossUnavailable } from './power-loss.js';

const why = powerLossUnavailable();
if (why !== undefined) {
  process.stderr.write(`${why}\n`);
  process.exitCode = 1;
} else {
  process.stdout.write('power-loss layer built\n');
}
