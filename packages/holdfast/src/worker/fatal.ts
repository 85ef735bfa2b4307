/**
 * How the worker dies. An uncaught exception, an unhandled rejection or a process.exit() from any code
 * in the worker does not end the thread on the spot: it tells the facade why, and blocks. The facade
 * then terminates it (supervisor.ts). Ending on the spot, with an LMDB write transaction running on
 * lmdb-js's writer thread, crashes the whole process with SIGSEGV (lmdb-js 3.5 closes the environment
 * under the running commit); terminate() from the facade does not. A blocked thread also sends and
 * writes nothing more in whatever state the failure left it.
 */
import type { FromWorker } from '../protocol.js';

/** process.exit as Node provides it, for the graceful shutdown (the cache is closed by then). */
export const reallyExit: (code?: number) => never = process.exit.bind(process);

export function installFatalHandlers(post: (msg: FromWorker) => void): void {
  const die = (cause: string): never => {
    try {
      post({ type: 'fatal', cause });
    } finally {
      for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
  };
  process.on('uncaughtException', (err) => die(err instanceof Error ? err.message : String(err)));
  process.on('unhandledRejection', (reason) => die(`unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}`));
  process.exit = ((code?: number | string | null) => die(`it called process.exit(${code ?? ''})`)) as typeof process.exit;
}
