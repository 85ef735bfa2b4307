import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * Builds the testkit's C code (packages/testkit/native/) with the system compiler, on first use. Each
 * build is cached outside git under node_modules/.cache (or the OS temp dir when that is not
 * writable), keyed by the sources, the compiler and its flags, so an edited source is rebuilt and an
 * unchanged one is compiled once per machine. What is missing (a compiler, pkg-config, a library's
 * development files) is a reason the caller reports; a source that does not compile throws.
 */

export interface NativeTarget {
  /** `native/<name>.c`, or every `.c` file of the folder `native/<name>/`. */
  name: string;
  /** A shared object (to LD_PRELOAD) or an executable. */
  kind: 'shared-object' | 'program';
  /** pkg-config packages to compile and link against. */
  packages?: readonly string[];
}

export type NativeBuild = { ok: true; path: string } | { ok: false; reason: string };

const packageRoot = fileURLToPath(new URL('..', import.meta.url));
const COMPILERS = ['cc', 'gcc', 'clang'];
const FLAGS: Record<NativeTarget['kind'], { compile: string[]; link: string[] }> = {
  'shared-object': { compile: ['-shared', '-fPIC', '-O2', '-Wall'], link: ['-ldl'] },
  program: { compile: ['-O2', '-Wall', '-Wextra', '-Werror'], link: [] },
};
const built = new Map<string, NativeBuild>();

/** The target, compiled if needed; `{ ok: false, reason }` names what is missing. */
export function nativeBuild(target: NativeTarget): NativeBuild {
  let result = built.get(target.name);
  if (result === undefined) {
    result = build(target);
    built.set(target.name, result);
  }
  return result;
}

function build({ name, kind, packages = [] }: NativeTarget): NativeBuild {
  const source = join(packageRoot, 'native', existsSync(join(packageRoot, 'native', name)) ? name : `${name}.c`);
  if (!existsSync(source)) return { ok: false, reason: `the source ${source} is missing` };
  const tried = [...new Set([process.env.CC, ...COMPILERS].filter((c): c is string => c !== undefined && c !== ''))];
  const compiler = tried.find((cc) => runs(cc, ['--version']));
  if (compiler === undefined) return { ok: false, reason: `no C compiler found (tried ${tried.join(', ')}) to build ${source}` };
  let libraries: string[] = [];
  if (packages.length > 0) {
    if (!runs('pkg-config', ['--version'])) return { ok: false, reason: `pkg-config is missing (to find ${packages.join(', ')})` };
    const found = spawnSync('pkg-config', ['--cflags', '--libs', ...packages], { encoding: 'utf8' });
    if (found.status !== 0) return { ok: false, reason: `the development files of ${packages.join(', ')} are missing (pkg-config: ${found.stderr.trim()})` };
    libraries = found.stdout.trim().split(/\s+/).filter(Boolean);
  }
  const files = statSync(source).isDirectory() ? readdirSync(source).sort().map((f) => join(source, f)) : [source];
  const { compile, link } = FLAGS[kind];
  const hash = createHash('sha256').update(JSON.stringify([compiler, compile, link, libraries, process.platform, process.arch]));
  for (const file of files) hash.update(file.slice(source.length)).update(readFileSync(file));
  const cache = cacheDir();
  const output = join(cache, `${name}-${hash.digest('hex').slice(0, 16)}${kind === 'shared-object' ? '.so' : ''}`);
  if (existsSync(output)) return { ok: true, path: output };
  // Compiled to a private name and renamed: a concurrent process never loads a half-written file.
  const partial = `${output}.${process.pid}.tmp`;
  const sources = files.filter((f) => f.endsWith('.c'));
  const run = spawnSync(compiler, [...compile, '-o', partial, ...sources, ...libraries, ...link], { encoding: 'utf8' });
  if (run.status !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`building ${source} with ${compiler} failed:\n${(run.stderr || run.error?.message || `exit ${run.status}`).trim()}`);
  }
  renameSync(partial, output);
  // Builds of earlier versions of the source are never used again.
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
