/** What the demo shows while it runs. */
export interface DemoView {
  elapsedMs: number;
  durationMs: number;
  phase: string;
  /** The device process: starting, running, or killed by the power cut until it restarts. */
  device: 'starting' | 'running' | 'powered off';
  /** The client's state and connectivity, as the running device last reported them. */
  state: string;
  offline: boolean;
  offlineCause: string | undefined;
  offlineForMs: number;
  /** Readings publish() accepted, confirmed by the device. */
  accepted: number;
  /** Distinct readings the auditor received at the broker. */
  delivered: number;
  powerCuts: number;
  linkCuts: number;
}

function bar(value: number, max: number, width = 24): string {
  const filled = max > 0 ? Math.min(width, Math.round((value / max) * width)) : 0;
  return `${'█'.repeat(filled)}${'·'.repeat(width - filled)}`;
}

export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The device's line: nothing from before a power cut is shown as current while it is off. */
export function deviceText(v: DemoView): string {
  if (v.device !== 'running') return v.device === 'starting' ? 'starting' : 'POWERED OFF (SIGKILL), restarting on the same cache';
  if (!v.offline) return `${v.state}, online`;
  const why = v.offlineCause === 'exchange-overdue' ? 'the broker does not answer' : 'not connected';
  return `${v.state}, OFFLINE (${why}, ${(v.offlineForMs / 1000).toFixed(1)} s)`;
}

/**
 * A live screen on a terminal (redrawn in place), or one progress line every couple of seconds
 * when the output is a file or a pipe. Its counts never overlap: accepted = delivered + waiting.
 */
export class DemoScreen {
  readonly #tty: boolean;
  #lines = 0;
  #peakWaiting = 1;
  #lastPlain = 0;

  constructor(tty: boolean) {
    this.#tty = tty;
  }

  /** A phase change or another notable moment, kept on screen above the live block. */
  note(text: string, elapsedMs: number): void {
    if (this.#tty) this.#clear();
    process.stdout.write(`[${(elapsedMs / 1000).toFixed(1).padStart(5)} s] ${text}\n`);
  }

  render(v: DemoView): void {
    const waiting = Math.max(0, v.accepted - v.delivered);
    this.#peakWaiting = Math.max(this.#peakWaiting, waiting);
    if (!this.#tty) {
      if (v.elapsedMs - this.#lastPlain < 2000) return;
      this.#lastPlain = v.elapsedMs;
      process.stdout.write(`[${(v.elapsedMs / 1000).toFixed(1).padStart(5)} s] device ${deviceText(v)}: accepted ${v.accepted}, delivered ${v.delivered}, waiting ${waiting}\n`);
      return;
    }
    const lines = [
      `holdfast demo  ${(v.elapsedMs / 1000).toFixed(1)} s of ${(v.durationMs / 1000).toFixed(0)} s   link cuts ${v.linkCuts}, power cuts ${v.powerCuts}`,
      `  now        ${v.phase}`,
      `  device     ${deviceText(v)}`,
      `  accepted   ${String(v.accepted).padStart(7)}   readings publish() accepted (each on disk before it returned)`,
      `  delivered  ${String(v.delivered).padStart(7)}   ${bar(v.delivered, Math.max(1, v.accepted))} seen by the auditor at the broker`,
      `  waiting    ${String(waiting).padStart(7)}   ${bar(waiting, this.#peakWaiting)} accepted, not yet at the broker`,
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
