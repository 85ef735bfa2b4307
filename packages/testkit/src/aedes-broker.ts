import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOOPBACK } from './ports.js';

/*
 * The Aedes fallback backend: spawn aedes-child.js with the current Node binary.
 * Aedes 1.2.0 accepts MQTT 3.1 (3) and 3.1.1 (4) but refuses MQTT 5 (CONNACK return
 * code 1); see aedes-child.ts. It has no disk persistence in this setup.
 */
export const AEDES_PROTOCOL_VERSIONS: readonly number[] = [3, 4];

/** The child script next to this module: .js in dist, .ts when run from source with tsx. */
function childScript(): { script: string; execArgv: string[] } {
  const js = fileURLToPath(new URL('./aedes-child.js', import.meta.url));
  if (existsSync(js)) return { script: js, execArgv: [] };
  const ts = fileURLToPath(new URL('./aedes-child.ts', import.meta.url));
  // Running from source means the parent was started with a TS loader; pass it on.
  return { script: ts, execArgv: process.execArgv };
}

export function aedesLogFile(dir: string): string {
  return path.join(dir, 'aedes.log');
}

export function spawnAedes(port: number, dir: string): ChildProcess {
  const { script, execArgv } = childScript();
  // stdin is a pipe only so the child notices (EOF) when the parent dies.
  return spawn(process.execPath, [...execArgv, script, String(port), LOOPBACK, aedesLogFile(dir)], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}

export function aedesLogTail(dir: string, maxLines = 20): string {
  try {
    return readFileSync(aedesLogFile(dir), 'utf8').trimEnd().split('\n').slice(-maxLines).join('\n');
  } catch {
    return '';
  }
}
