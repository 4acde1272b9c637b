/**
 * @lull/node: the worker daemon. Loads a model with node-llama-cpp, certifies a fresh HPKE key with its identity
 * key, dials its coordinator and serves sealed requests on parallel sequences.
 */
export * from './constants.js'
export * from './engine/index.js'
export { defaultThreads, describeCpu, describeHardware, type LiveHardware, liveHardware } from './hardware.js'
export * from './idle-policy.js'
export { SystemIdleSignals } from './idle-signals.js'
export { createLogger, type Logger } from './logger.js'
export { type DrainOutcome, LullNode, type LullNodeOptions, type NodeStats } from './lull-node.js'
export * from './model/index.js'
export * from './node-status.js'
export * from './replay-guard.js'
