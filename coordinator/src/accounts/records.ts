/** What the accounts store holds. Secrets never: keys and tokens are stored by their SHA-256 only. */

export type KeyRole = 'client' | 'admin'

export interface ApiKeyRecord {
  /** Public id for listing and revoking (`key_…`); not secret. */
  id: string
  name: string
  /** The account its requests are paid from. */
  account: string
  role: KeyRole
  /** SHA-256 of the secret, hex. */
  hash: string
  ratePerSecond: number
  burst: number
  /** Output tokens per quota period (a UTC day); none when absent. */
  quotaTokens?: number
  createdAtMs: number
  revokedAtMs?: number
}

export interface JoinTokenRecord {
  /** Public id for listing and revoking (`tok_…`); not secret. */
  id: string
  name: string
  /** The account credited for the work of nodes that joined with this token. */
  account: string
  hash: string
  createdAtMs: number
  revokedAtMs?: number
}

export interface AccountRecord {
  id: string
  /** Credits available: granted + earned − spent. */
  balance: number
  /** Credits granted by the operator (`keys create --credits`, `credits grant`). */
  granted: number
  /** Credits earned by nodes serving requests. */
  earned: number
  /** Credits spent on requests. */
  spent: number
}

export type UsageOutcome = 'completed' | 'cancelled' | 'failed'

export interface UsageRecord {
  /** The coordinator's request id (what the node saw). The ledger key. */
  requestId: string
  /** The client's request id (what the client saw). */
  clientRequestId: string
  /** The API key id, or `open` in open mode. */
  client: string
  /** The account charged; absent in open mode. */
  clientAccount?: string
  /** The node that ran (or last held) the request. */
  node?: string
  /** The account credited (from the node's join token). */
  nodeAccount?: string
  model: string
  maxTokens: number
  promptTokens: number
  outputTokens: number
  /** Credits moved from the client's account to the node's: 0 when disputed, failed, or in open mode. */
  credits: number
  submittedAtMs: number
  finishedAtMs: number
  outcome: UsageOutcome
  /** The error code of a failed request. */
  errorCode?: string
  /** Why the node's counts were not accepted (bad or missing signature, implausible counts): no credits moved. */
  disputed?: string
}
