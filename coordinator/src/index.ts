/**
 * @lull/coordinator: registers nodes, places each sealed request on one of its candidate nodes and relays the
 * sealed answer back, without ever holding a key that opens a request.
 */

export { Accounts, type LedgerJob } from './accounts/admission.js'
export { type CreateApiKeyOptions, createApiKey, findApiKey, listApiKeys, revokeApiKey } from './accounts/api-keys.js'
export * from './accounts/constants.js'
export {
  type CreateJoinTokenOptions,
  createJoinToken,
  listJoinTokens,
  revokeJoinToken,
} from './accounts/join-tokens.js'
export {
  grantCredits,
  listAccounts,
  queryUsage,
  type UsageQuery,
  type UsageTotals,
  writeUsage,
} from './accounts/ledger.js'
export type * from './accounts/records.js'
export { AccountsStore } from './accounts/store.js'
export * from './constants.js'
export { Coordinator, type CoordinatorOptions } from './coordinator.js'
export { createLogger, type Logger } from './logger.js'
export type { MetricsServer } from './metrics-server.js'
export type { NodeEntry } from './registry.js'
export { type Placement, placeRequest } from './scheduler.js'
