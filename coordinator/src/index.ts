/**
 * @lull/coordinator: registers nodes, places each sealed request on one of its candidate nodes and relays the
 * sealed answer back, without ever holding a key that opens a request.
 */
export * from './constants.js'
export { Coordinator, type CoordinatorOptions } from './coordinator.js'
export { createLogger, type Logger } from './logger.js'
export type { MetricsServer } from './metrics-server.js'
export type { NodeEntry } from './registry.js'
export { type Placement, placeRequest } from './scheduler.js'
