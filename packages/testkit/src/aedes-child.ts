/*
 * Entry point of the Aedes fallback broker, run as its own process (see aedes-broker.ts)
 * so that SIGSTOP/SIGCONT/SIGKILL act on it exactly as on mosquitto.
 *
 * argv: <port> <host> <log file>
 *
 * Aedes 1.2.0 speaks MQTT 3.1 and 3.1.1 only: a CONNECT with protocol level 5 gets a
 * 3.1.1-style CONNACK with return code 1 (unacceptable protocol version) — see the
 * `protocolVersion < 3 || > 4` check in aedes/lib/handlers/connect.js; its README lists
 * MQTT 5.0 as "not support yet". Its state (sessions, retained messages, queued QoS 1/2
 * messages) lives in this process's memory, so it is lost when the process exits.
 */
import { appendFileSync } from 'node:fs';
import net from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2]);
const host = process.argv[3] ?? '127.0.0.1';
const logFile = process.argv[4];

function log(line: string): void {
  if (logFile === undefined) return;
  try {
    appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
  } catch {
    // logging must never take the broker down
  }
}

const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);

broker.on('clientError', (client, err) => log(`client error ${client.id}: ${err.message}`));
broker.on('connectionError', (_client, err) => log(`connection error: ${err.message}`));

server.on('error', (err) => {
  // The parent looks for EADDRINUSE here to retry on a fresh port.
  process.stderr.write(`aedes-child: ${err.message}\n`);
  log(`error: ${err.message}`);
  process.exit(1);
});
server.listen(port, host, () => log(`listening on ${host}:${port}`));

let stopping = false;
function shutdown(reason: string): void {
  if (stopping) return;
  stopping = true;
  log(`stopping (${reason})`);
  // Don't let a slow client hold the exit: the parent waits for it.
  setTimeout(() => process.exit(0), 2000).unref();
  server.close();
  broker.close(() => process.exit(0));
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
// The parent holds our stdin open; EOF means it died without killing us (e.g. SIGKILL).
process.stdin.on('end', () => shutdown('parent gone'));
process.stdin.resume();
