import type { Argv } from 'yargs';
import { CONNECTION_FLAGS } from '../args/connection.js';
import type { RunContext } from './context.js';

const AUDIT_FLAGS = {
  topic: { type: 'string', array: true, default: ['#'], describe: 'Topic filter(s) to audit; repeat for several. Bulk messages arrive on holdfast/bulk/<client-id>' },
  duration: { type: 'string', describe: 'Stop after this long, e.g. 90s or 10m (default: until Ctrl-C)' },
  json: { type: 'boolean', default: false, describe: 'Machine-readable output: one JSON object per event, then a summary line' },
  'keep-session': {
    type: 'boolean',
    default: false,
    describe:
      'Leave the persistent session on the broker at exit (an hour on MQTT 5), so the next audit under the same client id resumes it. ' +
      'The default id is holdfast-audit-<host> with --keep-session and holdfast-audit-<host>-<pid> without; run one audit per id at a time',
  },
  'progress-every': { type: 'string', default: '10s', describe: 'When not on a terminal, print the running counts this often (to stderr with --json)' },
} as const;

export function registerAudit(y: Argv, ctx: RunContext): Argv {
  return y.command(
    'audit',
    'Subscribe and prove delivery: per-device seq tracking, gaps (lost), duplicates and reorderings',
    (b) =>
      b
        .options({ ...CONNECTION_FLAGS, ...AUDIT_FLAGS })
        .group(Object.keys(CONNECTION_FLAGS), 'Connection:')
        .example("$0 audit --broker mqtt://broker:1883 --topic 'sensors/#' --topic 'holdfast/bulk/#'", 'Audit live until Ctrl-C, with bulk messages')
        .example("$0 audit --broker mqtt://broker:1883 --topic 'sensors/#' --duration 10m --json > audit.jsonl", 'Ten minutes, machine-readable; exit code 1 if anything is missing')
        .example("$0 audit --broker mqtts://broker:8883 --ca ca.pem --username ops --password-file /run/secrets/mqtt --topic 'sensors/#'", 'Over TLS with a password file')
        .epilog(
          'Readings are identified by the MQTT 5 user property holdfast-id (<clientId>/<seq>), by bulk contents, or by a JSON payload with device and seq (or n). ' +
            'Gaps are counted within each seq epoch (one epoch per publisher start); the first epoch seen starts where the audit joined. Exit code: 0 when nothing is missing, 1 when gaps remain, 2 for bad arguments.',
        ),
    async (argv) => {
      const { runAudit } = await import('../audit/run.js');
      ctx.exitCode = await runAudit(argv);
    },
  );
}
