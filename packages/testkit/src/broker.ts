import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AEDES_PROTOCOL_VERSIONS, aedesLogTail, spawnAedes } from './aedes-broker.js';
import { ProcessBroker, type BrokerBackend } from './broker-process.js';
import type { Broker, BrokerOptions } from './broker-types.js';
import { findMosquitto, mosquittoLogTail, spawnMosquitto } from './mosquitto.js';
import { freePort } from './ports.js';

export type { Broker, BrokerOptions } from './broker-types.js';

/** The free port may be taken before the broker binds it; try this many ports. */
const PORT_ATTEMPTS = 3;

/**
 * Start a real broker on a free loopback port: mosquitto when installed, otherwise Aedes
 * in a child process (unless mosquitto is required). Resolves once it accepts TCP.
 */
export async function startBroker(opts: BrokerOptions = {}): Promise<Broker> {
  const log = opts.log ?? ((line: string) => console.warn(line));
  if (opts.forceAedes === true && opts.requireMosquitto === true) {
    throw new Error('startBroker: forceAedes and requireMosquitto cannot both be true');
  }
  const requireMosquitto = opts.requireMosquitto ?? (opts.forceAedes !== true && process.env.HOLDFAST_REQUIRE_MOSQUITTO === '1');
  const bin = opts.forceAedes === true ? undefined : findMosquitto();
  if (bin === undefined && requireMosquitto) {
    throw new Error('startBroker: mosquitto is required (HOLDFAST_REQUIRE_MOSQUITTO=1) but was not found on PATH, /usr/sbin or /usr/local/sbin');
  }

  const dir = await mkdtemp(path.join(tmpdir(), 'holdfast-broker-'));
  let backend: BrokerBackend;
  if (bin !== undefined) {
    backend = {
      kind: 'mosquitto',
      protocolVersions: [3, 4, 5],
      spawn: (port) => spawnMosquitto(bin, { port, dir, persistence: opts.persistence ?? false, extraConfig: opts.extraConfig ?? [] }),
      logTail: () => mosquittoLogTail(dir),
    };
  } else {
    if (opts.forceAedes !== true) log('mosquitto not found, using embedded Aedes');
    if (opts.extraConfig !== undefined && opts.extraConfig.length > 0) {
      log(`startBroker: extraConfig is mosquitto-only and is ignored by Aedes: ${opts.extraConfig.join('; ')}`);
    }
    backend = {
      kind: 'aedes',
      protocolVersions: AEDES_PROTOCOL_VERSIONS,
      spawn: (port) => spawnAedes(port, dir),
      logTail: () => aedesLogTail(dir),
    };
  }

  const broker = new ProcessBroker(backend, await freePort(), dir);
  try {
    await broker.firstStart(freePort, PORT_ATTEMPTS);
  } catch (err) {
    await broker.close();
    throw err;
  }
  return broker;
}
