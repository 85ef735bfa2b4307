import { PROFILES, type Metric, type Profile, type ProfileName } from './profiles.js';
import { chance, gaussian } from './random.js';

export interface Telemetry {
  values: Record<string, number>;
  /** The metric that spiked in this reading, if any. */
  anomaly: string | undefined;
}

/**
 * One simulated device: each metric follows baseline + a slow sine drift (at a phase of its own, so
 * a fleet does not move in lockstep) + Gaussian noise, with rare spikes at the profile's rate.
 */
export class SimulatedDevice {
  readonly id: string;
  readonly profile: Profile;
  readonly #phases: number[];
  readonly #random: () => number;

  constructor(id: string, profile: ProfileName, random: () => number = Math.random) {
    this.id = id;
    this.profile = PROFILES[profile];
    this.#random = random;
    this.#phases = this.profile.metrics.map(() => random() * 2 * Math.PI);
  }

  /** The reading at wall-clock `now` (ms). */
  read(now: number): Telemetry {
    const spiking = chance(this.profile.anomalyRate, this.#random) ? Math.floor(this.#random() * this.profile.metrics.length) : -1;
    const values: Record<string, number> = {};
    this.profile.metrics.forEach((metric, i) => {
      values[metric.name] = sample(metric, now, this.#phases[i] ?? 0, i === spiking, this.#random);
    });
    return { values, anomaly: spiking >= 0 ? this.profile.metrics[spiking]?.name : undefined };
  }
}

function sample(m: Metric, now: number, phase: number, spike: boolean, random: () => number): number {
  const drift = m.drift * Math.sin((2 * Math.PI * now) / m.driftPeriodMs + phase);
  const raw = m.baseline + drift + m.noise * gaussian(random) + (spike ? m.spike : 0);
  const scale = 10 ** m.decimals;
  return Math.round(Math.min(m.max, Math.max(m.min, raw)) * scale) / scale;
}
