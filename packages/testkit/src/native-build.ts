import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * The testkit's C tools (packages/testkit/native/*.c) are built on first use with the system compiler,
 * into native/build/, one binary per source and flags (a changed source builds a new one). CI
 * installs the compiler and libraries (.ci/run); elsewhere a missing piece is reported, not thrown.
 */

const NATIVE_DIR = fileURLToPath(new URL('../native/', import.meta.url));

export type NativeBuild = { ok: true; path: string } | { ok: false; missing: string };

const built = new Map<string, NativeBuild>();

/** Builds native/<name>.c (linked against the pkg-config `packages`) unless already built. */
export function buildNative(name: string, packages: readonly string[] = []): NativeBuild {
  const cached = built.get(name);
  if (cached) return cached;
  const result = compile(name, packages);
  built.set(name, result);
  return result;
}

function compile(name: string, packages: readonly string[]): NativeBuild {
  const cc = process.env.CC ?? 'cc';
  if (!runs(cc, ['--version'])) return { ok: false, missing: `a C compiler (${cc} not found)` };
  let flags: string[] = [];
  if (packages.length > 0) {
    if (!runs('pkg-config', ['--version'])) return { ok: false, missing: 'pkg-config' };
    const found = spawnSync('pkg-config', ['--cflags', '--libs', ...packages], { encoding: 'utf8' });
    if (found.status !== 0) return { ok: false, missing: `the development files of ${packages.join(', ')} (pkg-config: ${found.stderr.trim()})` };
    flags = found.stdout.trim().split(/\s+/).filter(Boolean);
  }
  const source = join(NATIVE_DIR, `${name}.c`);
  const args = ['-O2', '-Wall', '-Wextra', '-Werror', '-o'];
  const hash = createHash('sha256').update(readFileSync(source)).update(JSON.stringify([cc, args, flags])).digest('hex').slice(0, 12);
  const dir = join(NATIVE_DIR, 'build');
  const out = join(dir, `${name}-${hash}`);
  if (existsSync(out)) return { ok: true, path: out };
  mkdirSync(dir, { recursive: true });
  // Another process may build the same binary at the same time: each writes its own, the rename wins.
  const tmp = `${out}.${process.pid}.tmp`;
  const result = spawnSync(cc, [...args, tmp, source, ...flags], { encoding: 'utf8' });
  if (result.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`building ${source} failed:\n${result.stderr || result.error?.message}`);
  }
  renameSync(tmp, out);
  // Binaries of older sources are never used again.
  for (const file of readdirSync(dir)) if (file.startsWith(`${name}-`) && join(dir, file) !== out && !file.endsWith('.tmp')) rmSync(join(dir, file), { force: true });
  return { ok: true, path: out };
}

/** True when `command` starts and exits 0. */
export function runs(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}
