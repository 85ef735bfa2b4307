/**
 * `pnpm bench <name> [--json] [--quick] [...]`: runs one benchmark from bench/<name>.ts.
 * `pnpm bench all --quick` runs every benchmark in quick mode (what CI does, so none of them rots).
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h') {
  console.log(`usage: pnpm bench <name> [--json] [--quick] [options]\n       pnpm bench all --quick\n\nbenchmarks: ${available.join(', ')}`);
  process.exitCode = name ? 0 : 2;
} else {
  const names = name === 'all' ? available : [name];
  for (const bench of names) {
    if (!available.includes(bench)) {
      console.error(`unknown benchmark '${bench}'; available: ${available.join(', ')}`);
      process.exitCode = 2;
      break;
    }
    const result = spawnSync(process.execPath, ['--import', 'tsx', `${here}${bench}.bench.ts`, ...rest], { stdio: 'inherit' });
    if (result.status !== 0) {
      console.error(`benchmark '${bench}' failed (exit ${result.status ?? result.signal})`);
      process.exitCode = 1;
    }
  }
}
