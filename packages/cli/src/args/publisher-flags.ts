import type { ConnectionArgs } from './connection.js';

/** The publisher's own flags on top of the connection. */
export const PUBLISHER_FLAGS = {
  'cache-dir': { type: 'string', describe: 'Directory of the LMDB cache (created 0700)' },
  durability: { type: 'string', describe: "'spill' (flash written only during trouble) or 'journal' (every reading on disk before publish() returns)" },
  'cache-key-file': { type: 'string', describe: 'File holding a 32-byte key (hex or base64) that encrypts the cache at rest' },
  qos: { type: 'string', describe: 'QoS for every message: 2, or 1 for brokers without QoS 2' },
  timeout: { type: 'string', describe: 'How long to wait for PUBCOMP before spilling to the cache, e.g. 10s' },
  config: { type: 'string', describe: 'JSON file of library options (see the holdfast README); flags override it' },
} as const;

export interface PublisherArgs extends ConnectionArgs {
  'cache-dir'?: string | undefined;
  durability?: string | undefined;
  'cache-key-file'?: string | undefined;
  qos?: string | undefined;
  timeout?: string | undefined;
  config?: string | undefined;
}
