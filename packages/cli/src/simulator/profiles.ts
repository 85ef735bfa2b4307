/**
 * Device profiles: what each kind of device measures, how its readings drift and scatter, how often
 * it reports and how often something odd happens. Values are loosely modelled on real hardware.
 */

export interface Metric {
  name: string;
  unit: string;
  baseline: number;
  /** Half the peak-to-peak swing of the slow sine drift. */
  drift: number;
  /** Period of the drift (each device starts at a random phase). */
  driftPeriodMs: number;
  /** Standard deviation of the Gaussian noise on every reading. */
  noise: number;
  /** How far an anomaly pushes the reading (signed). */
  spike: number;
  /** Physical bounds the reading is clamped to (a humidity never reads 104 %). */
  min: number;
  max: number;
  decimals: number;
}

export interface Profile {
  name: ProfileName;
  /** Default telemetry interval when --interval is not given. */
  intervalMs: number;
  /** Probability that a telemetry reading carries an anomaly spike. */
  anomalyRate: number;
  /** A status message every this many telemetry readings. */
  statusEvery: number;
  metrics: Metric[];
}

export const PROFILE_NAMES = ['sensor', 'camera', 'gateway', 'controller'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

const MINUTE = 60_000;

export const PROFILES: Record<ProfileName, Profile> = {
  sensor: {
    name: 'sensor',
    intervalMs: 1000,
    anomalyRate: 0.01,
    statusEvery: 30,
    metrics: [
      { name: 'temperature', unit: '°C', baseline: 21, drift: 2.5, driftPeriodMs: 20 * MINUTE, noise: 0.08, spike: 9, min: -40, max: 85, decimals: 2 },
      { name: 'humidity', unit: '%', baseline: 45, drift: 6, driftPeriodMs: 30 * MINUTE, noise: 0.4, spike: 25, min: 0, max: 100, decimals: 1 },
      { name: 'battery', unit: 'V', baseline: 3.6, drift: 0.05, driftPeriodMs: 60 * MINUTE, noise: 0.005, spike: -0.6, min: 2.5, max: 4.2, decimals: 3 },
    ],
  },
  camera: {
    name: 'camera',
    intervalMs: 5000,
    anomalyRate: 0.02,
    statusEvery: 12,
    metrics: [
      { name: 'fps', unit: 'fps', baseline: 25, drift: 0.8, driftPeriodMs: 5 * MINUTE, noise: 0.3, spike: -18, min: 0, max: 60, decimals: 1 },
      { name: 'bitrate', unit: 'kbit/s', baseline: 4000, drift: 600, driftPeriodMs: 10 * MINUTE, noise: 120, spike: 5000, min: 0, max: 20_000, decimals: 0 },
      { name: 'motion', unit: 'score', baseline: 0.08, drift: 0.05, driftPeriodMs: 15 * MINUTE, noise: 0.02, spike: 0.8, min: 0, max: 1, decimals: 3 },
    ],
  },
  gateway: {
    name: 'gateway',
    intervalMs: 2000,
    anomalyRate: 0.01,
    statusEvery: 15,
    metrics: [
      { name: 'cpu', unit: '%', baseline: 28, drift: 10, driftPeriodMs: 8 * MINUTE, noise: 3, spike: 60, min: 0, max: 100, decimals: 1 },
      { name: 'memory', unit: '%', baseline: 62, drift: 4, driftPeriodMs: 40 * MINUTE, noise: 0.5, spike: 30, min: 0, max: 100, decimals: 1 },
      { name: 'rssi', unit: 'dBm', baseline: -71, drift: 6, driftPeriodMs: 12 * MINUTE, noise: 2, spike: -25, min: -120, max: -30, decimals: 0 },
    ],
  },
  controller: {
    name: 'controller',
    intervalMs: 500,
    anomalyRate: 0.005,
    statusEvery: 60,
    metrics: [
      { name: 'pressure', unit: 'bar', baseline: 4, drift: 0.3, driftPeriodMs: 3 * MINUTE, noise: 0.02, spike: 2.5, min: 0, max: 16, decimals: 3 },
      { name: 'flow', unit: 'l/min', baseline: 120, drift: 15, driftPeriodMs: 6 * MINUTE, noise: 1.5, spike: -90, min: 0, max: 400, decimals: 1 },
      { name: 'valve', unit: '%', baseline: 50, drift: 20, driftPeriodMs: 4 * MINUTE, noise: 0.5, spike: 45, min: 0, max: 100, decimals: 1 },
    ],
  },
};
