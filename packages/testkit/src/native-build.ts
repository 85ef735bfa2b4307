import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * Builds the testkit's C shims (packages/testkit/native/<name>.c) into shared objects with the system
 * compiler, on demand. Each build is cached outside git under node_modules/.cache (or the OS temp dir
 * when that is not writable), keyed by the source's hash, so an edited shim is rebuilt and an unchanged
 * one is compiled once per machine.
 */

export type NativeBuild = { ok: true; path: string } | { ok: false; reason: string };

const packageRoot = fileURLToPath(new URL('..', import.meta.url));
const COMPILERS = ['cc', 'gcc', 'clang'];
const built = new Map<string, NativeBuild>();

/** The shim `name` as a shared object, compiled if needed; `{ ok: false, reason }` names what is missing. */
export function nativeShim(name: string): NativeBuild {
  let result = built.get(name);
  if (result === undefined) {
    result = build(name);
    built.set(name, result);
  }
  return result;
}

function build(name: string): NativeBuild {
  const source = join(packageRoot, 'native', `${name}.c`);
  if (!existsSync(source)) return { ok: false, reason: `the shim's source ${source} is missing` };
  const key = createHash('sha256').update(readFileSync(source)).update(`${process.platform}-${process.arch}`).digest('hex').slice(0, 16);
  const dir = cacheDir();
  const output = join(dir, `${name}-${key}.so`);
  if (existsSync(output)) return { ok: true, path: output };
  const compilers = [...new Set([process.env.CC, ...COMPILERS].filter((c): c is string => c !== undefined && c !== ''))];
  const failures: string[] = [];
  for (const compiler of compilers) {
    // Compiled to a private name and renamed: concurrent test processes never load a half-written file.
    const partial = `${output}.${process.pid}.tmp`;
    const run = spawnSync(compiler, ['-shared', '-fPIC', '-O2', '-Wall', '-o', partial, source, '-ldl'], { encoding: 'utf8' });
    if (run.error !== undefined && (run.error as NodeJS.ErrnoException).code === 'ENOENT') continue;
    if (run.status === 0) {
      renameSync(partial, output);
      return { ok: true, path: output };
    }
    rmSync(partial, { force: true });
    failures.push(`${compiler}: ${(run.stderr || run.error?.message || `exit ${run.status}`).trim().split('\n').slice(-5).join('\n')}`);
  }
  if (failures.length > 0) return { ok: false, reason: `compiling ${source} failed:\n${failures.join('\n')}` };
  return { ok: false, reason: `no C compiler found (tried ${compilers.join(', ')}) to build the ${name} shim; install one, e.g. apt-get install gcc` };
}

function cacheDir(): string {
  const preferred = join(packageRoot, 'node_modules', '.cache', 'holdfast-testkit');
  for (const dir of [preferred, join(tmpdir(), `holdfast-testkit-native-${process.getuid?.() ?? 'user'}`)]) {
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
