import type { Rec } from './record.js';

/** Bounded so a long outage's backlog cannot grow the sample without limit. */
const MAX_SAMPLES = 10_000;

/** publish()-to-PUBCOMP times since the last report, for the /metrics histogram. */
export class LatencySampler {
  #samples: number[] = [];

  /** Wall clock, clamped at 0: a clock jump distorts one sample, never the order of anything. */
  record(recs: readonly Rec[]): void {
    const now = Date.now();
    for (const rec of recs) if (this.#samples.length < MAX_SAMPLES) this.#samples.push(Math.max(0, now - rec.ts));
  }

  take(): number[] {
    const samples = this.#samples;
    this.#samples = [];
    return samples;
  }
}
