/**
 * The evidence file: everything needed to see how a reading was lost or duplicated, as JSON lines.
 * One line for the run, one per device life (its client events, stats and flush confirmations, with
 * times since the start), one for the faults, and the auditor's arrivals as runs of consecutive numbers.
 */
import { writeFileSync } from 'node:fs';
import { runs, type DeviceEvent } from '@holdfast/testkit';
import type { Life } from './fleet.js';
import type { ChaosPlan } from './schedule.js';
import type { Timeline } from './timeline.js';

export interface TraceInput {
  run: Record<string, unknown>;
  plan: ChaosPlan;
  lives: readonly Life[];
  events: ReadonlyArray<readonly DeviceEvent[]>;
  timeline: Timeline;
  arrivals: readonly number[];
}

export function writeTrace(path: string, input: TraceInput): void {
  const { timeline } = input;
  const lines: unknown[] = [{ run: input.run, plan: input.plan }];
  input.lives.forEach((life, i) => {
    const log: unknown[] = [];
    for (const e of input.events[i] ?? []) {
      if (typeof e.n === 'number') continue;
      if (Array.isArray(e.s)) {
        const [wall, state, connected, memory, inflight, cached, delivered, spilled] = e.s as number[];
        log.push({ t: timeline.at(wall!), stats: { state, connected, memory, inflight, cached, delivered, spilled } });
      } else if (typeof e.t === 'number') log.push({ ...e, t: timeline.at(e.t) });
      else log.push(e);
    }
    const { accepted, ...rest } = life;
    lines.push({ life: rest, acceptedRuns: runs(accepted), log });
  });
  lines.push({ spans: timeline.spans, marks: timeline.marks });
  lines.push({ arrivalRuns: runs(input.arrivals) });
  writeFileSync(path, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
}
