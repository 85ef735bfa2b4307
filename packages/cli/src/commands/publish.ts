import type { Argv } from 'yargs';
import { CONNECTION_FLAGS } from '../args/connection.js';
import { PUBLISHER_FLAGS } from '../args/publisher-flags.js';
import { PROFILE_NAMES } from '../simulator/profiles.js';
import type { RunContext } from './context.js';

const PUBLISH_FLAGS = {
  topic: { type: 'string', default: 'sensors/{device}/{kind}', describe: 'Topic template; {device} is the device id, {kind} is telemetry, status or event (stdin lines use "line")' },
  interval: { type: 'string', describe: 'Telemetry interval, e.g. 500ms or 5s (default: the profile’s own: sensor 1s, camera 5s, gateway 2s, controller 500ms)' },
  count: { type: 'string', describe: 'Messages per device, telemetry, status and events alike (an audit sees exactly this many), then wait until everything is delivered and exit (default: run until Ctrl-C)' },
  devices: { type: 'string', default: '1', describe: 'Simulated devices in this process; each has its own client id (<client-id>-<i>) and cache (<cache-dir>/<client-id>-<i>)' },
  profile: { type: 'string', default: 'sensor', describe: `Device profile: ${PROFILE_NAMES.join(', ')}, or mixed (the fleet cycles through them)` },
  priority: { type: 'string', default: '5', describe: 'Telemetry priority 1–10 (status is sent 2 lower, events 3 higher); for --stdin, every line' },
  stdin: { type: 'boolean', default: false, describe: 'Publish one message per line of standard input instead of simulated readings' },
  'stats-every': { type: 'string', default: '10s', describe: 'How often to log a stats line when not on a terminal' },
} as const;

export function registerPublish(y: Argv, ctx: RunContext): Argv {
  return y.command(
    'publish',
    'Publish cyclic readings from simulated devices (or stdin lines) through holdfast',
    (b) =>
      b
        .options({ ...CONNECTION_FLAGS, ...PUBLISHER_FLAGS, ...PUBLISH_FLAGS })
        .group(Object.keys(CONNECTION_FLAGS), 'Connection:')
        .group(Object.keys(PUBLISHER_FLAGS), 'Publisher:')
        .example('$0 publish --broker mqtt://127.0.0.1:1883 --client-id pump-7', 'One simulated sensor, a reading a second')
        .example('$0 publish --broker mqtt://broker:1883 --client-id site-a --devices 4 --profile mixed --interval 500ms', 'A small mixed fleet in one process')
        .example('$0 publish --broker mqtt://broker:1883 --client-id cam-1 --profile camera --count 100 --durability journal', '100 messages, committed before sending, then exit once delivered')
        .example("journalctl -o cat -u sensor | $0 publish --stdin --broker mqtts://broker:8883 --ca ca.pem --client-id gw --topic 'logs/{device}'", 'One message per input line, over TLS')
        .example('$0 publish --config /etc/holdfast/publisher.json --client-id dev-001', 'Library options from a JSON file; flags override it')
        .epilog(
          'Settings come from, lowest first: library defaults, --config, HOLDFAST_* environment variables (HOLDFAST_BROKER, HOLDFAST_CLIENT_ID, HOLDFAST_PASSWORD, …), flags. ' +
            'Payloads are JSON {device, profile, kind, n, ts, …}. Ctrl-C or SIGTERM closes gracefully: pending readings are spilled to the cache and sent first on the next start; the exit code is 0.',
        ),
    async (argv) => {
      const { runPublish } = await import('../publish/run.js');
      ctx.exitCode = await runPublish(argv);
    },
  );
}
