/**
 * Plays a chaos plan against the real pieces: the link proxy, the broker and the device fleet.
 * The two tracks run concurrently; within a track an event that runs late pushes the next one back,
 * and the timeline records when things really happened.
 */
import type { Broker, LinkProxy } from '@holdfast/testkit';
import type { Fleet } from './fleet.js';
import type { ChaosPlan, NetworkEvent } from './schedule.js';
import type { Timeline } from './timeline.js';

export interface ChaosTargets {
  broker: Broker;
  link: LinkProxy;
  fleet: Fleet;
  timeline: Timeline;
  log: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

export async function runChaos(plan: ChaosPlan, targets: ChaosTargets): Promise<void> {
  await Promise.all([networkTrack(plan, targets), powerTrack(plan, targets)]);
  // Run calm until the planned end, so the last fault has time to show in the picture.
  await sleep(plan.durationMs - targets.timeline.at());
}

async function networkTrack(plan: ChaosPlan, t: ChaosTargets): Promise<void> {
  for (const event of plan.network) {
    await sleep(event.atMs - t.timeline.at());
    await fault(event, t);
  }
}

async function fault(event: NetworkEvent, t: ChaosTargets): Promise<void> {
  const seconds = (t.timeline.at() / 1000).toFixed(1);
  switch (event.kind) {
    case 'reset':
      t.log(`${seconds}s link reset`);
      t.timeline.mark('reset');
      t.link.reset();
      return;
    case 'stall': {
      t.log(`${seconds}s link stall ${event.durationMs} ms`);
      const end = t.timeline.begin('stall');
      await t.link.stallFor(event.durationMs);
      end();
      return;
    }
    case 'outage': {
      t.log(`${seconds}s link outage ${event.durationMs} ms`);
      const end = t.timeline.begin('outage');
      await t.link.outage(event.durationMs);
      end();
      return;
    }
    case 'broker-restart': {
      t.log(`${seconds}s broker restart`);
      const end = t.timeline.begin('broker-restart');
      await t.broker.restart();
      end();
      return;
    }
  }
}

async function powerTrack(plan: ChaosPlan, t: ChaosTargets): Promise<void> {
  let openedAt = t.timeline.at();
  for (const kill of plan.kills) {
    await sleep(Math.max(kill.atMs, openedAt + kill.aliveMs) - t.timeline.at());
    const mark = t.timeline.mark('kill');
    // Off from the cut until the restarted client is open again (the boot counts as off).
    const end = t.timeline.begin('power-off');
    const life = await t.fleet.kill();
    t.log(`${(mark.t / 1000).toFixed(1)}s SIGKILL life ${life.index} (last accepted n=${life.accepted.at(-1) ?? '-'}, ${life.volatileAtKill} in memory/in flight)`);
    await sleep(kill.offMs);
    await t.fleet.start();
    end();
    openedAt = t.timeline.at();
  }
}
