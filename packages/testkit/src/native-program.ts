import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * Builds the testkit's C programs (packages/testkit/native/<name>/*.c) into executables with the system
 * compiler, on first use, linked against pkg-config packages. Each build is cached outside git under
 * node_modules/.cache (or the OS temp dir when that is not writable), keyed by the source and flags,
 * so an edited source is rebuilt and an unchanged one is compiled once per machine.
 */

export type NativeProgram = { ok: true; path: string } | { ok: false; missing: string };

const packageRoot = fileURLToPath(new URL('..', import.meta.url));
const built = new Map<string, NativeProgram>();

/** The program `name`, compiled if needed; `{ ok: false, missing }` names what is missing. */
export function nativeProgram(name: string, packages: readonly string[] = []): NativeProgram {
  let result = built.get(name);
  if (result === undefined) {
    result = compile(name, packages);
    built.set(name, result);
  }
  return result;
}

function compile(name: string, packages: readonly string[]): NativeProgram {
  const cc = process.env.CC || 'cc';
  if (!runs(cc, ['--version'])) return { ok: false, missing: `a C compiler (${cc} not found)` };
  let flags: string[] = [];
  if (packages.length > 0) {
    if (!runs('pkg-config', ['--version'])) return { ok: false, missing: 'pkg-config' };
    const found = spawnSync('pkg-config', ['--cflags', '--libs', ...packages], { encoding: 'utf8' });
    if (found.status !== 0) return { ok: false, missing: `the development files of ${packages.join(', ')} (pkg-config: ${found.stderr.trim()})` };
    flags = found.stdout.trim().split(/\s+/).filter(Boolean);
  }
  const dir = join(packageRoot, 'native', name);
  const files = readdirSync(dir).sort();
  const sources = files.filter((f) => f.endsWith('.c')).map((f) => join(dir, f));
  const args = ['-O2', '-Wall', '-Wextra', '-Werror', '-o'];
  const hash = createHash('sha256').update(JSON.stringify([cc, args, flags, process.arch]));
  for (const file of files) hash.update(file).update(readFileSync(join(dir, file)));
  const key = hash.digest('hex').slice(0, 16);
  const cache = cacheDir();
  const output = join(cache, `${name}-${key}`);
  if (existsSync(output)) return { ok: true, path: output };
  // Compiled to a private name and renamed: a concurrent process never runs a half-written file.
  const partial = `${output}.${process.pid}.tmp`;
  const result = spawnSync(cc, [...args, partial, ...sources, ...flags], { encoding: 'utf8' });
  if (result.status !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`building ${dir} failed:\n${result.stderr || result.error?.message}`);
  }
  renameSync(partial, output);
  // Builds of earlier versions of the source are never run again.
  for (const old of readdirSync(cache)) if (old.startsWith(`${name}-`) && !old.endsWith('.tmp') && join(cache, old) !== output) rmSync(join(cache, old), { force: true });
  return { ok: true, path: output };
}

function cacheDir(): string {
  for (const dir of [join(packageRoot, 'node_modules', '.cache', 'holdfast-testkit'), join(tmpdir(), `holdfast-testkit-native-${process.getuid?.() ?? 'user'}`)]) {
    try {
      mkdirSync(dir, { recursive: true });
      accessSync(dir, constants.W_OK);
      return dir;
    } catch {
      // Read-only install: fall through to the temp dir.
    }
  }
  return tmpdir();
}

/** True when `command` starts and exits 0. */
export function runs(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}
