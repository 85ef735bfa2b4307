/**
 * Runs the test suite the way `pnpm test` means it: a readable summary (the spec reporter, failures
 * repeated in full at the end, liblmdb's full-disk report labelled as expected: reporter.mjs), one file
 * at a time, and a private temp dir that must be empty afterwards, so a test that leaves files behind
 * is named.
 *
 *   node --import tsx run.ts            every *.test.ts
 *   node --import tsx run.ts --quick    the smoke run: one file per core guarantee, the fastest
 *   node --import tsx run.ts a.test.ts  the files named
 *   TEST_REPORTER=tap …                 raw TAP (any reporter node --test knows), for tools
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One file per core guarantee, chosen for speed: under a minute (51–55 s on a busy 2-core VM). */
const QUICK = [
  'validation.test.ts', // 7: bad input gets a typed error at the call site
  'errors.test.ts', // 7: errors keep class and code across the thread boundary
  'power-cut.test.ts', // 1, 2: an outage, a SIGKILL, a restart: spilled readings first, in order
  'exactly-once.test.ts', // 3: the in-flight packet survives a power cut, no duplicate
  'bounded-cache.test.ts', // 4: eviction by priority, a full disk
  'dead-letters.test.ts', // 5: poison messages do not block the queue
  'quarantine.test.ts', // 8: a corrupt cache is renamed aside, never deleted
];

const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const named = args.filter((a) => a.endsWith('.test.ts'));
const files = args.includes('--quick') ? QUICK : named.length > 0 ? named : readdirSync(here).filter((f) => f.endsWith('.test.ts')).sort();

const tmp = mkdtempSync(join(tmpdir(), 'holdfast-test-run-'));
// Per test, and per file: chaos.test.ts and chaos-full.test.ts each run regression seeds in a row (2–3 minutes).
const TEST_TIMEOUT_MS = 360_000;
const run = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-reporter=${process.env.TEST_REPORTER || './reporter.mjs'}`, '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files],
  { cwd: here, stdio: 'inherit', env: { ...process.env, TMPDIR: tmp } },
);
// tsx's compile cache (tsx-<uid>) is the tooling's, shared by the run's processes, not a test's.
const leftovers = readdirSync(tmp).filter((f) => !/^tsx-\d+$/.test(f));
rmSync(tmp, { recursive: true, force: true });
if (leftovers.length > 0) {
  process.stderr.write(`\nThe tests left ${leftovers.length} item(s) in their temp dir (each test must remove what it writes):\n${leftovers.map((f) => `  ${f}`).join('\n')}\n`);
}
process.exitCode = run.status ?? 1;
if (leftovers.length > 0) process.exitCode = 1;
