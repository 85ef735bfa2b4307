/** The publish simulator: drift on a slow sine at a per-device phase, Gaussian noise, spikes at the profile's rate. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedDevice } from '../packages/cli/dist/simulator/device.js';
import { PROFILE_NAMES, PROFILES } from '../packages/cli/dist/simulator/profiles.js';

/** A fixed sequence of "random" numbers, repeated. */
const sequence = (...values: number[]): (() => number) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('simulated devices', () => {
  it('drift follows a sine over the metric period, at the device phase', () => {
    // random() = 0.5: phase π, no anomaly (0.5 > rate), and a fixed noise sample.
    const device = new SimulatedDevice('d', 'sensor', sequence(0.5));
    const temperature = PROFILES.sensor.metrics[0]!;
    const quarter = temperature.driftPeriodMs / 4;
    const a = device.read(quarter).values.temperature!; // sin(π/2 + π) = -1
    const b = device.read(3 * quarter).values.temperature!; // sin(3π/2 + π) = +1
    assert.ok(Math.abs(b - a - 2 * temperature.drift) < 0.02, `${b} - ${a} ≈ ${2 * temperature.drift}`);
  });

  it('each device starts at its own phase', () => {
    const one = new SimulatedDevice('one', 'sensor', sequence(0.1, 0.5, 0.5, 0.5, 0.5));
    const two = new SimulatedDevice('two', 'sensor', sequence(0.6, 0.5, 0.5, 0.5, 0.5));
    assert.notEqual(one.read(0).values.temperature, two.read(0).values.temperature);
  });

  it('readings scatter around the baseline within physical bounds, with spikes at about the profile rate', () => {
    for (const name of PROFILE_NAMES) {
      const profile = PROFILES[name];
      const device = new SimulatedDevice('d', name);
      let anomalies = 0;
      const n = 4000;
      const sums = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const r = device.read(i * profile.intervalMs);
        if (r.anomaly !== undefined) anomalies++;
        for (const m of profile.metrics) {
          const v = r.values[m.name]!;
          assert.ok(v >= m.min && v <= m.max, `${name}.${m.name} = ${v} within [${m.min}, ${m.max}]`);
          sums.set(m.name, (sums.get(m.name) ?? 0) + v);
        }
      }
      for (const m of profile.metrics) {
        const mean = sums.get(m.name)! / n;
        const slack = m.drift + 4 * m.noise + Math.abs(m.spike) * profile.anomalyRate * 3 + 10 ** -m.decimals;
        assert.ok(Math.abs(mean - m.baseline) <= slack, `${name}.${m.name} mean ${mean} near ${m.baseline}`);
      }
      assert.ok(anomalies > 0 && anomalies < n * profile.anomalyRate * 4, `${name}: ${anomalies} anomalies in ${n}`);
    }
  });
});
