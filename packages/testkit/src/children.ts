import type { ChildProcess } from 'node:child_process';

/*
 * Every broker and device process the testkit spawns is tracked here so that it dies with
 * the parent. A leaked mosquitto keeps its port and, if SIGSTOPped, never exits on its own.
 */

const live = new Set<ChildProcess>();
const cleanups = new Set<() => void>();
let hooksInstalled = false;

const TERMINATING_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function killAll(): void {
  for (const child of live) {
    // SIGKILL also ends a SIGSTOPped process, so no SIGCONT is needed here.
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // best effort: we are exiting
    }
  }
  cleanups.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  // Only act when we are the sole listener: then Node's default (die) would have applied,
  // and 'exit' would not run. Anyone else listening owns shutdown; 'exit' still covers us.
  if (process.listenerCount(signal) > 1) return;
  killAll();
  for (const s of TERMINATING_SIGNALS) process.removeListener(s, onSignal);
  process.kill(process.pid, signal);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAll);
  for (const s of TERMINATING_SIGNALS) process.on(s, onSignal);
}

/** Kill `child` with SIGKILL if the parent process exits while it is still running. */
export function trackChild(child: ChildProcess): void {
  installHooks();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/**
 * Run `cleanupSync` (e.g. remove a temp dir) when the parent exits, after the children
 * are killed. Returns a function that cancels it.
 */
export function atParentExit(cleanupSync: () => void): () => void {
  installHooks();
  cleanups.add(cleanupSync);
  return () => cleanups.delete(cleanupSync);
}
