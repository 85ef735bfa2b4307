/**
 * Publishing over TLS or mTLS, with the broker's CA, the client certificate and key, and a password
 * all given as file paths in the environment: what a container or a systemd unit with
 * LoadCredential= hands a process. loadConfig() reads the files; nothing secret is ever printed.
 *
 *   HOLDFAST_BROKER=mqtts://broker.example:8883 \
 *   HOLDFAST_CLIENT_ID=device-001 \
 *   HOLDFAST_TLS_CA_FILE=/etc/holdfast/ca.pem \
 *   HOLDFAST_TLS_CERT_FILE=/etc/holdfast/device.pem HOLDFAST_TLS_KEY_FILE=/etc/holdfast/device.key \
 *   node --import tsx examples/tls.ts
 *
 * Any HOLDFAST_* variable works (see loadConfig); HOLDFAST_USERNAME and HOLDFAST_PASSWORD_FILE add
 * password auth. TLS_EXAMPLE_COUNT (10) readings are sent one per TLS_EXAMPLE_PERIOD_MS (100); the
 * example then waits until the broker has them all and exits. A connection error (wrong CA, expired
 * certificate, bad password) is printed as it happens, and the client keeps retrying with backoff.
 */
import { loadConfig, open } from 'holdfast';

const count = Number(process.env.TLS_EXAMPLE_COUNT ?? 10);
const periodMs = Number(process.env.TLS_EXAMPLE_PERIOD_MS ?? 100);

const options = await loadConfig();
const client = await open(options);
const log = (entry: Record<string, unknown>): void => console.log(JSON.stringify(entry));

client.on('connect', () => log({ msg: 'connected', broker: options.broker }));
client.on('connection-error', (e: { message: string; code?: string | number }) => log({ msg: 'connection error', code: e.code, error: e.message }));
client.on('reconnecting', (e: { delayMs: number }) => log({ msg: 'reconnecting', delayMs: e.delayMs }));

for (let n = 1; n <= count; n++) {
  client.publish(`sensors/${options.clientId}/temperature`, JSON.stringify({ device: options.clientId, n, celsius: 21 + Math.random() }));
  await new Promise((resolve) => setTimeout(resolve, periodMs));
}
await client.drained();
const { accepted, delivered } = client.stats();
await client.close();
log({ msg: 'done', accepted, delivered });
