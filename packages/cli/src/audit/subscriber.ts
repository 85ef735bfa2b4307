import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Connection } from '../args/connection.js';

export interface SubscriberOptions {
  connection: Connection;
  clientId: string;
  topics: string[];
  /** Seconds the broker keeps the session after a disconnect we did not choose (MQTT 5). */
  sessionExpirySec: number;
  onMessage(topic: string, payload: Buffer, properties: Record<string, unknown> | undefined): void;
  onNote(msg: string, fields?: Record<string, unknown>): void;
}

export interface Subscriber {
  readonly protocolVersion: 4 | 5;
  /** Disconnects; unless `keepSession`, the broker drops the session so it stops queueing for us. */
  close(keepSession: boolean): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 10_000;

function mqttOptions(o: SubscriberOptions, protocolVersion: 4 | 5): IClientOptions {
  const opts: IClientOptions = {
    clientId: o.clientId,
    protocolVersion,
    clean: false,
    reconnectPeriod: 1000,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // Subscriptions are (re)made on every CONNACK without a session, for 3.1.1 and 5 alike.
    resubscribe: false,
  };
  if (protocolVersion === 5) opts.properties = { sessionExpiryInterval: o.sessionExpirySec };
  const c = o.connection;
  if (c.username !== undefined) opts.username = c.username;
  if (c.password !== undefined) opts.password = c.password;
  if (c.tls?.ca !== undefined) opts.ca = c.tls.ca;
  if (c.tls?.cert !== undefined) opts.cert = c.tls.cert;
  if (c.tls?.key !== undefined) opts.key = c.tls.key;
  return opts;
}

/** Connects once; resolves after the first SUBACK, rejects on a refused connection or subscription. */
function attempt(o: SubscriberOptions, protocolVersion: 4 | 5): Promise<MqttClient> {
  const client = connect(o.connection.broker, mqttOptions(o, protocolVersion));
  return new Promise<MqttClient>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error & { code?: unknown }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no connection to ${o.connection.broker} within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    client.on('error', (err) => {
      if (!settled) fail(err);
      else o.onNote('connection-error', { error: err.message });
    });
    client.on('message', (topic, payload, packet) => o.onMessage(topic, payload, packet.properties as Record<string, unknown> | undefined));
    client.on('connect', (connack) => {
      if (settled) o.onNote('connect', { sessionPresent: connack.sessionPresent });
      if (connack.sessionPresent && settled) return;
      client.subscribe(o.topics, { qos: 2 }, (err, granted) => {
        const refused = granted?.find((g) => g.qos > 2);
        if (err) fail(err);
        else if (refused) fail(new Error(`the broker refused the subscription to ${refused.topic} (code ${refused.qos})`));
        else if (!settled) {
          settled = true;
          clearTimeout(timer);
          resolve(client);
        }
      });
    });
    client.on('offline', () => {
      if (settled) o.onNote('disconnect');
    });
  });
}

/**
 * A QoS 2 subscriber with a persistent session, so readings the broker holds while the audit's own
 * link drops are still counted. Without an explicit protocol it tries MQTT 5, then 3.1.1.
 */
export async function subscribe(o: SubscriberOptions): Promise<Subscriber> {
  let protocolVersion: 4 | 5 = o.connection.protocolVersion ?? 5;
  let client: MqttClient;
  try {
    client = await attempt(o, protocolVersion);
  } catch (err) {
    const refusedV5 = (err as { code?: unknown }).code === 1 && o.connection.protocolVersion === undefined;
    if (!refusedV5) throw new Error(`cannot subscribe on ${o.connection.broker}: ${(err as Error).message}`);
    o.onNote('the broker refused MQTT 5; using 3.1.1 (readings are counted by the device and n in JSON payloads)');
    protocolVersion = 4;
    client = await attempt(o, protocolVersion).catch((e: Error) => {
      throw new Error(`cannot subscribe on ${o.connection.broker}: ${e.message}`);
    });
  }
  return {
    protocolVersion,
    async close(keepSession) {
      if (client.connected && !keepSession) {
        await within(
          CLOSE_STEP_MS,
          protocolVersion === 5
            ? client.endAsync(false, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
            : client.unsubscribeAsync(o.topics).then(() => client.endAsync(false)),
        );
      }
      await client.endAsync(true);
      // 3.1.1 sessions never expire: without this, every audit run would leave one on the broker.
      if (!keepSession && protocolVersion === 4) await discardSession(o);
    },
  };
}

/** How long each step of close() may take: a broker that does not answer must not hold up the summary. */
const CLOSE_STEP_MS = 2000;

async function within(ms: number, step: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([step.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** A clean 3.1.1 connection under the same id is how a broker is told to discard the session. */
async function discardSession(o: SubscriberOptions): Promise<void> {
  const cleaner = connect(o.connection.broker, { ...mqttOptions(o, 4), clean: true, reconnectPeriod: 0, connectTimeout: CLOSE_STEP_MS });
  cleaner.on('error', () => undefined);
  const answered = new Promise<void>((resolve) => {
    cleaner.once('connect', () => resolve());
    cleaner.once('close', () => resolve());
  });
  await within(CLOSE_STEP_MS, answered);
  await within(CLOSE_STEP_MS, cleaner.endAsync(false));
  await cleaner.endAsync(true);
}
