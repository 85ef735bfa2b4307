/**
 * The chaos regression seeds with the full 30 s fault window (see chaos-seeds.ts); the short ones are
 * in chaos.test.ts.
 */
import { describe } from 'node:test';
import { CHAOS_DEFAULTS } from '@holdfast/testkit';
import { regressionSeeds } from './chaos-seeds.js';

describe('chaos campaign: regression seeds with the full fault window', () => regressionSeeds((r) => r.parsed.durationMs >= CHAOS_DEFAULTS.durationS * 1000));
