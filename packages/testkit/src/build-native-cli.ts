/**
 * `pnpm --filter @holdfast/testkit run build:native`: compiles the C shims now (CI does this, so a
 * missing compiler fails the build instead of skipping tests later). Exit 1 names what is missing.
 */
import { slowFsyncShim } from './slow-fsync.js';

const shim = slowFsyncShim();
if (shim.ok) {
  process.stdout.write(`slow-fsync shim: ${shim.path}\n`);
} else {
  process.stderr.write(`slow-fsync shim: ${shim.reason}\n`);
  process.exitCode = 1;
}
