export { open } from './open.js';
export { HoldfastClient } from './client.js';
export { HoldfastError, ErrorCodes, type ErrorCode } from './errors.js';
export { type HoldfastOptions, defaultBulkTopic } from './options.js';
export { type PublishOptions } from './validate.js';
export { type HoldfastStats, type CachedStats } from './stats.js';
export { type ClientState } from './protocol.js';
export { unpackBulk, type BulkReading } from './bulk.js';
export { loadConfig, ENV_VARS, type LoadConfigOptions, type ConfigInput } from './config.js';
