/**
 * @holdfast/testkit: real brokers, a faulty link, a delivery auditor and killable device
 * processes, for holdfast's tests and benchmarks and for users testing their pipelines.
 */
export { canConnect, freePort } from './ports.js';
export { startBroker } from './broker.js';
export type { Broker, BrokerOptions } from './broker-types.js';
export { startLinkProxy } from './link-proxy.js';
export type { Direction, LinkProxy, LinkProxyOptions, PacketFault, PacketFaultCounts, PacketName } from './link-proxy.js';
export { DEFAULT_SETTLE_MS, startAuditor } from './auditor.js';
export type { Auditor, AuditorOptions, WaitForOptions } from './auditor.js';
export { defaultExtract, extractReadingNumber } from './extract.js';
export type { AuditMessage, Extract, Reading } from './extract.js';
export type { AuditReport, DeviceReport } from './audit-ledger.js';
export { spawnDevice } from './device-process.js';
export { writeEventLine } from './device-line.js';
export type { DeviceEvent, DeviceExit, DeviceOptions, DeviceProcess } from './device-process.js';
export { fetchPlatformNode, NODE_PLATFORMS, platformNode, platformNodeCache } from './platform-node.js';
export type { NodePlatform, PlatformNode } from './platform-node.js';
export { slowFsync, slowFsyncShim, readSyncCounts, SLOW_FSYNC_COUNTS_ENV, SLOW_FSYNC_MS_ENV } from './slow-fsync.js';
export type { SlowFsync, SyncCounts } from './slow-fsync.js';
export type { NativeBuild } from './native-build.js';
export { makeTlsFiles, tlsListenerConfig, mosquittoPasswordFile, findMosquittoPasswd, type TlsFiles } from './tls.js';
export { powerLossUnavailable, startPowerLossLayer } from './power-loss.js';
export type { PowerLossLayer, PowerLossLayerOptions, PowerLossStats } from './power-loss.js';
export { seededRandom } from './chaos/random.js';
export { runs, compact } from './number-runs.js';
export { runCampaign, type CampaignOptions, type CampaignResult } from './chaos/campaign.js';
export { parseChaosArgs, reproCommand, CHAOS_USAGE, CHAOS_DEFAULTS, type ChaosArgs } from './chaos/args.js';
export { summarize, passed, table, type ChaosSummary } from './chaos/report.js';
export { FAULT_KINDS, planSeed, type FaultKind, type ChaosEvent, type SeedPlan } from './chaos/schedule.js';
export { judge, lossBoundPerKill, type JudgeInput, type Verdict } from './chaos/invariants.js';
export type { Life } from './chaos/devices.js';
export { findLibfaketime } from './chaos/clock.js';
export type { SeedResult } from './chaos/run-seed.js';
