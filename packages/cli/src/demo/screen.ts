/** What the demo shows while it runs. */
export interface DemoView {
  elapsedMs: number;
  durationMs: number;
  phase: string;
  state: string;
  connected: boolean;
  accepted: number;
  memory: number;
  cached: number;
  delivered: number;
  powerCuts: number;
  linkCuts: number;
}

function bar(value: number, max: number, width = 24): string {
  const filled = max > 0 ? Math.min(width, Math.round((value / max) * width)) : 0;
  return `${'█'.repeat(filled)}${'·'.repeat(width - filled)}`;
}

/**
 * A live screen on a terminal (redrawn in place), or one progress line every couple of seconds
 * when the output is a file or a pipe.
 */
export class DemoScreen {
  readonly #tty: boolean;
  #lines = 0;
  #peakCache = 1;
  #lastPlain = 0;

  constructor(tty: boolean) {
    this.#tty = tty;
  }

  /** A phase change or another notable moment, kept on screen above the live block. */
  note(text: string, elapsedMs: number): void {
    const line = `[${(elapsedMs / 1000).toFixed(1).padStart(5)} s] ${text}`;
    if (this.#tty) {
      this.#clear();
      process.stdout.write(`${line}\n`);
    } else {
      process.stdout.write(`${line}\n`);
    }
  }

  render(v: DemoView): void {
    this.#peakCache = Math.max(this.#peakCache, v.cached);
    if (!this.#tty) {
      if (v.elapsedMs - this.#lastPlain < 2000) return;
      this.#lastPlain = v.elapsedMs;
      process.stdout.write(`[${(v.elapsedMs / 1000).toFixed(1).padStart(5)} s] ${v.state}${v.connected ? '' : ' (offline)'} accepted ${v.accepted}, memory ${v.memory}, cached ${v.cached}, delivered ${v.delivered}\n`);
      return;
    }
    const lines = [
      `holdfast demo  ${(v.elapsedMs / 1000).toFixed(1)} s of ${(v.durationMs / 1000).toFixed(0)} s   link cuts ${v.linkCuts}, power cuts ${v.powerCuts}`,
      `  now        ${v.phase}`,
      `  device     ${v.state.padEnd(9)} ${v.connected ? 'connected' : 'OFFLINE'}`,
      `  accepted   ${String(v.accepted).padStart(7)}   readings publish() accepted`,
      `  memory     ${String(v.memory).padStart(7)}   waiting in RAM`,
      `  cache      ${String(v.cached).padStart(7)}   ${bar(v.cached, this.#peakCache)}`,
      `  delivered  ${String(v.delivered).padStart(7)}   ${bar(v.delivered, Math.max(1, v.accepted))} seen by the auditor`,
    ];
    this.#clear();
    process.stdout.write(`${lines.join('\n')}\n`);
    this.#lines = lines.length;
  }

  #clear(): void {
    if (this.#lines > 0) process.stdout.write(`\x1b[${this.#lines}A\x1b[0J`);
    this.#lines = 0;
  }

  /** Leaves the last live block on screen. */
  end(): void {
    this.#lines = 0;
  }
}
