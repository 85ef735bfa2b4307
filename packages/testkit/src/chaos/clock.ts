/**
 * A device's wall clock, moved at run time with libfaketime: the library is preloaded into the
 * device process only, and re-reads its offset from a file every second, so the campaign jumps
 * the clock by rewriting the file. Monotonic time is left real. Not FAKETIME_NO_CACHE: re-reading the
 * file on every call runs fopen (malloc) inside clock_gettime, which libfaketime's own issues report
 * as crashing multi-threaded programs; a device that crashed with glibc malloc assertions under it was
 * never seen to crash without it.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

let found: string | null | undefined;

/**
 * The multi-threaded libfaketime, as `faketime -m` itself would preload it (asked from faketime, so no
 * path is hard-coded), else from the Debian package's file list; undefined when neither is installed.
 */
export function findLibfaketime(): string | undefined {
  if (found !== undefined) return found ?? undefined;
  found = null;
  const attempts: Array<() => string> = [
    () => execFileSync('faketime', ['-m', '-f', '+0', 'sh', '-c', 'printf %s "$LD_PRELOAD"'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    () => execFileSync('dpkg', ['-L', 'libfaketime'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').find((l) => l.endsWith('/libfaketimeMT.so.1')) ?? '',
  ];
  for (const attempt of attempts) {
    try {
      const lib = attempt().trim();
      if (lib !== '') {
        found = lib;
        break;
      }
    } catch {
      // not installed this way
    }
  }
  return found ?? undefined;
}

export class DeviceClock {
  constructor(
    private readonly lib: string,
    private readonly file: string,
  ) {
    this.set(0);
  }

  /** The environment that puts the device on this clock. */
  get env(): Record<string, string> {
    return { LD_PRELOAD: this.lib, FAKETIME_TIMESTAMP_FILE: this.file, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  }

  /** Moves the wall clock to `offsetSec` from the real time. */
  set(offsetSec: number): void {
    writeFileSync(this.file, `${offsetSec >= 0 ? '+' : ''}${offsetSec}\n`);
  }
}
