import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { spawnDevice, startAuditor, startBroker, startLinkProxy, type AuditMessage, type Broker, type DeviceProcess, type Reading } from '@holdfast/testkit';
import { DemoScreen, plural, type DemoView } from './screen.js';
import { verdictOf, type Verdict } from './verdict.js';

export interface DemoSettings {
  /** An existing broker; undefined starts the embedded Aedes broker. */
  broker: { host: string; port: number; url: string } | undefined;
  durationMs: number;
  intervalMs: number;
  protocolVersion: 4 | 5;
  cacheDir: string | undefined;
  json: boolean;
}


const DEVICE_SCRIPT = fileURLToPath(new URL('./device.js', import.meta.url));
const DEVICE_ID = 'demo-device';
const DRAIN_TIMEOUT_MS = 60_000;

/** Settle window after the last expected reading: a late duplicate would arrive in it. */
const SETTLE_MS = 1000;

/** Counts a demo reading by the device's own number n, which works on every broker (MQTT 3.1.1 too). */
function extractDemoReading(msg: AuditMessage): Reading[] {
  try {
    const body = JSON.parse(msg.payload.toString('utf8')) as { device?: unknown; n?: unknown };
    if (typeof body.device === 'string' && typeof body.n === 'number') return [{ device: body.device, seq: body.n }];
  } catch {
    // Not a demo reading.
  }
  return [];
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/**
 * The demo: one simulated device publishing through a faulty link to a broker, with an auditor on
 * the broker side. The link is cut three times and stalled once, the device loses power once and
 * restarts on the same cache; then it stops reading, drains, and the auditor's count is compared with
 * what the device accepted.
 */
export async function runDemo(s: DemoSettings, interrupted: Promise<unknown>): Promise<Verdict> {
  const screen = s.json ? undefined : new DemoScreen(process.stdout.isTTY === true);
  // The schedule's clock starts when the device is up, so a slow start never eats into the faults.
  let started = performance.now();
  const elapsed = (): number => performance.now() - started;
  const say = (text: string): void => screen?.note(text, elapsed());
  let stopEarly = false;
  void interrupted.then(() => {
    stopEarly = true;
  });

  const cacheDir = s.cacheDir ?? mkdtempSync(join(tmpdir(), 'holdfast-demo-'));
  const topicRoot = `holdfast-demo/${randomBytes(3).toString('hex')}`;
  let broker: Broker | undefined;
  const cleanups: Array<() => Promise<unknown> | void> = [];
  const devices: DeviceProcess[] = [];
  let ticker: NodeJS.Timeout | undefined;
  try {
    let target = s.broker;
    if (target === undefined) {
      broker = await startBroker({ forceAedes: true, log: (line) => say(line) });
      cleanups.push(() => broker?.close());
      target = { host: broker.host, port: broker.port, url: broker.url };
      say(`embedded Aedes broker on ${broker.url} (MQTT 3.1.1)`);
    } else {
      say(`broker ${target.url}`);
    }
    const link = await startLinkProxy({ targetHost: target.host, targetPort: target.port });
    cleanups.push(() => link.close());
    const auditor = await startAuditor({ url: target.url, topics: `${topicRoot}/#`, protocolVersion: s.protocolVersion, extract: extractDemoReading });
    cleanups.push(() => auditor.close());
    say(`device ${DEVICE_ID} publishes through a fault-injecting link ${link.url}; an auditor subscribes at the broker`);

    const view: DemoView = { elapsedMs: 0, durationMs: s.durationMs, phase: 'publishing', device: 'starting', state: '', offline: true, offlineCause: undefined, offlineForMs: 0, accepted: 0, delivered: 0, powerCuts: 0, linkCuts: 0 };
    const accepted = (): number[] => devices.flatMap((d) => d.events.filter((e) => typeof e.accepted === 'number').map((e) => e.accepted as number));
    const announced = (): number => Math.max(0, ...devices.flatMap((d) => d.events.filter((e) => typeof e.publishing === 'number').map((e) => e.publishing as number)));
    const startDevice = (): DeviceProcess => {
      const device = spawnDevice({
        script: DEVICE_SCRIPT,
        env: {
          DEMO_BROKER: link.url,
          DEMO_CLIENT_ID: DEVICE_ID,
          DEMO_CACHE_DIR: cacheDir,
          DEMO_TOPIC: `${topicRoot}/${DEVICE_ID}/telemetry`,
          DEMO_N_START: String(announced() + 1),
          DEMO_INTERVAL_MS: String(s.intervalMs),
          DEMO_PROTOCOL: String(s.protocolVersion),
        },
      });
      device.on('event', (e) => {
        // A killed device's last lines must not show as current.
        if (devices.at(-1) !== device || view.device === 'powered off') return;
        if (e.open === true) {
          view.device = 'running';
          view.state = String(e.state);
        }
        const st = e.stats as Record<string, unknown> | undefined;
        if (st === undefined) return;
        view.state = String(st.state);
        view.offline = st.offline === true;
        view.offlineCause = typeof st.offlineCause === 'string' ? st.offlineCause : undefined;
        view.offlineForMs = Number(st.offlineForMs);
      });
      devices.push(device);
      return device;
    };
    let device = startDevice();
    cleanups.push(() => Promise.all(devices.map((d) => d.kill())));
    await device.waitForEvent((e) => e.open === true, 20_000);
    started = performance.now();

    ticker = setInterval(() => {
      view.elapsedMs = elapsed();
      view.accepted = accepted().length;
      view.delivered = auditor.report().unique;
      screen?.render(view);
    }, 250);

    const D = s.durationMs;
    const cutMs = clamp(D * 0.05, 1000, 3000);
    const stallMs = clamp(D * 0.08, 1500, 4000);
    const at = async (fraction: number): Promise<boolean> => {
      while (!stopEarly && elapsed() < D * fraction) await delay(Math.min(100, D * fraction - elapsed()));
      return !stopEarly;
    };
    const cut = async (): Promise<void> => {
      view.linkCuts++;
      view.phase = `LINK CUT ${view.linkCuts} (connections reset and refused for ${(cutMs / 1000).toFixed(1)} s)`;
      say(view.phase);
      await link.outage(cutMs);
      view.phase = 'publishing';
      say('link restored');
    };

    if (await at(0.12)) await cut();
    if (await at(0.28)) {
      view.phase = `LINK STALL (bytes held for ${(stallMs / 1000).toFixed(1)} s, like a radio fade)`;
      say(view.phase);
      await link.stallFor(stallMs);
      view.phase = 'publishing';
      say('stall over: held bytes delivered in order');
    }
    if (await at(0.45)) await cut();
    if (await at(0.58)) {
      view.powerCuts++;
      view.phase = 'POWER CUT (device process SIGKILLed)';
      view.device = 'powered off';
      say(view.phase);
      await device.kill('SIGKILL');
      await delay(500);
      device = startDevice();
      view.device = 'starting';
      await device.waitForEvent((e) => e.open === true, 20_000);
      const opened = device.events.find((e) => e.open === true);
      view.phase = 'publishing';
      say(`device restarted on the same cache (${plural(Number(opened?.cached ?? 0), 'cached reading')}, state ${String(opened?.state)})`);
    }
    if (await at(0.72)) await cut();
    await at(0.9);

    view.phase = 'stopped reading; draining everything to the broker';
    say(view.phase);
    device.kill('SIGUSR2').catch(() => undefined);
    await device.waitForEvent((e) => e.drained === true, DRAIN_TIMEOUT_MS).catch((err: Error) => say(`drain did not finish: ${err.message.split('\n')[0]}`));
    const expected = accepted();
    await auditor.waitFor({ [DEVICE_ID]: expected }, 15_000);
    await delay(SETTLE_MS);
    const verdict = verdictOf(expected, auditor.arrivals(DEVICE_ID), auditor.report({ [DEVICE_ID]: expected }));
    clearInterval(ticker);
    view.elapsedMs = elapsed();
    view.accepted = verdict.accepted;
    view.delivered = verdict.delivered;
    screen?.render(view);
    screen?.end();
    return verdict;
  } finally {
    clearInterval(ticker);
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
    if (s.cacheDir === undefined) rmSync(cacheDir, { recursive: true, force: true });
  }
}
