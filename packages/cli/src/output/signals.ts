/**
 * Resolves on the first SIGINT or SIGTERM. While installed, the signals no longer kill the process,
 * so a command can close gracefully and exit 0; dispose() restores the default.
 */
export function onStopSignal(): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let handler: ((s: NodeJS.Signals) => void) | undefined;
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    handler = (s) => resolve(s);
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
  return {
    signal,
    dispose: () => {
      if (!handler) return;
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
