import { type EndMessage, ErrorCode, LullError, type RequestHeader, verifyUsageSignature } from '@lull/proto'
import { findApiKey } from './api-keys.js'
import {
  CREDITS_PER_OUTPUT_TOKEN,
  CREDITS_PER_PROMPT_TOKEN,
  OPEN_CLIENT_ID,
  PROMPT_TEMPLATE_ALLOWANCE_TOKENS,
  QUOTA_PERIOD_MS,
} from './constants.js'
import { findJoinToken } from './join-tokens.js'
import { writeUsage } from './ledger.js'
import { RateLimiter } from './rate-limiter.js'
import type { ApiKeyRecord, UsageOutcome } from './records.js'
import type { AccountsStore } from './store.js'

const GET_A_KEY =
  'ask the network operator for an API key (lull-coordinator keys create) and pass it as apiKey (lull --api-key or LULL_API_KEY)'

/** What admission reserved for a request, released or settled when it ends. */
interface Admission {
  client: string
  clientAccount?: string
  keyId?: string
  reservedCredits: number
  reservedTokens: number
  quotaKey?: string
}

/** The request facts a usage record needs. */
export interface LedgerJob {
  id: string
  clientRequestId: string
  header: RequestHeader
  submittedAtMs: number
}

/**
 * Who may use the network and who owes what: checks API keys, join tokens and admin access, admits requests
 * (rate limit → quota → credit reservation, all before any dispatch) and writes each request's usage record with
 * its balance moves. Without a store (open mode with no data dir) every check passes and nothing is recorded.
 */
export class Accounts {
  readonly store: AccountsStore | undefined
  readonly open: boolean
  readonly #limiter = new RateLimiter()
  readonly #admissions = new Map<string, Admission>()
  readonly #reservedCredits = new Map<string, number>()
  readonly #reservedTokens = new Map<string, number>()
  /** Ledger writes not yet on disk: `close()` waits for them, so a stopping coordinator loses none. */
  readonly #writes = new Set<Promise<unknown>>()
  /** Registered nodes' join tokens: the token id (checked again on heartbeats) and the account it credits. */
  readonly #nodes = new Map<string, { tokenId: string; account: string }>()

  constructor(store: AccountsStore | undefined, open: boolean) {
    if (!open && store === undefined) throw new Error('accounts need a data dir unless the coordinator runs open')
    this.store = store
    this.open = open
  }

  /** A client's key for catalogue and submit requests: the key record, or an `unauthorized` error. */
  authenticateClient(apiKey: string | undefined): ApiKeyRecord | LullError | undefined {
    if (this.open || this.store === undefined) return undefined
    if (apiKey === undefined) return new LullError(ErrorCode.Unauthorized, `no API key was sent: ${GET_A_KEY}`)
    this.store.refresh()
    const key = findApiKey(this.store, apiKey)
    return key ?? new LullError(ErrorCode.Unauthorized, `the API key is unknown or revoked: ${GET_A_KEY}`)
  }

  /** The account a valid key spends from (whom fair sharing is per); undefined in open mode or for a bad key. */
  accountOf(apiKey: string | undefined): string | undefined {
    const key = this.authenticateClient(apiKey)
    return key instanceof LullError ? undefined : key?.account
  }

  /** Admin requests (status, explain) need a key with the admin role, unless the coordinator runs open. */
  authorizeAdmin(apiKey: string | undefined): LullError | undefined {
    const key = this.authenticateClient(apiKey)
    if (key instanceof LullError || key === undefined) return key
    if (key.role === 'admin') return undefined
    return new LullError(
      ErrorCode.Forbidden,
      `key ${key.id} may not read the admin view: use a key created with lull-coordinator keys create --admin`,
    )
  }

  /** A node's join token: undefined when it may register (its account noted for its earnings), else the error. */
  admitNode(nodeId: string, joinToken: string | undefined): LullError | undefined {
    if (this.open || this.store === undefined) return undefined
    const what =
      'ask the network operator for a join token (lull-coordinator tokens create --name <node>) and start the node with --join-token <token> or LULL_JOIN_TOKEN'
    if (joinToken === undefined) return new LullError(ErrorCode.Unauthorized, `no join token was sent: ${what}`)
    this.store.refresh()
    const token = findJoinToken(this.store, joinToken)
    if (token === undefined)
      return new LullError(ErrorCode.Unauthorized, `the join token is unknown or revoked: ${what}`)
    this.#nodes.set(nodeId, { tokenId: token.id, account: token.account })
    return undefined
  }

  /**
   * Whether a registered node's join token has been revoked since (the coordinator checks on each heartbeat and
   * drops the node): the error to send it, or undefined while the token stands (and always in open mode).
   */
  nodeTokenRevoked(nodeId: string): LullError | undefined {
    const node = this.#nodes.get(nodeId)
    if (this.open || this.store === undefined || node === undefined) return undefined
    this.store.refresh()
    const token = this.store.tokens.get(node.tokenId)
    if (token !== undefined && token.revokedAtMs === undefined) return undefined
    this.#nodes.delete(nodeId)
    return new LullError(
      ErrorCode.Unauthorized,
      `this node's join token ${node.tokenId} was revoked: ask the network operator for a new one (lull-coordinator tokens create) and restart the node with --join-token`,
    )
  }

  /**
   * Admits a submitted request before anything is dispatched: a valid key, then its rate limit, its quota, and
   * a reservation of `maxTokens × price` credits from its account. Returns the typed refusal, or undefined.
   */
  admit(job: LedgerJob, apiKey: string | undefined, nowMs = Date.now()): LullError | undefined {
    if (this.store === undefined) return undefined
    if (this.open) {
      this.#admissions.set(job.id, { client: OPEN_CLIENT_ID, reservedCredits: 0, reservedTokens: 0 })
      return undefined
    }
    const key = this.authenticateClient(apiKey)
    if (key instanceof LullError || key === undefined) return key
    const waitMs = this.#limiter.take(key.id, key.ratePerSecond, key.burst, nowMs)
    if (waitMs > 0) {
      return new LullError(
        ErrorCode.RateLimited,
        `key ${key.id} is over its rate limit (${key.ratePerSecond} requests/s, burst ${key.burst}); retry after ${waitMs} ms`,
        { retryAfterMs: waitMs },
      )
    }
    const { maxTokens } = job.header
    let quotaKey: string | undefined
    if (key.quotaTokens !== undefined) {
      const periodStartMs = Math.floor(nowMs / QUOTA_PERIOD_MS) * QUOTA_PERIOD_MS
      quotaKey = `${key.id}/${periodStartMs}`
      const used = this.store.quota.get(quotaKey) ?? 0
      const reserved = this.#reservedTokens.get(key.id) ?? 0
      if (used + reserved + maxTokens > key.quotaTokens) {
        const retryAfterMs = periodStartMs + QUOTA_PERIOD_MS - nowMs
        return new LullError(
          ErrorCode.QuotaExceeded,
          `key ${key.id} has used ${used} of its ${key.quotaTokens} output tokens today (${reserved} more reserved by requests in flight) and this request may use ${maxTokens}: lower maxTokens, or retry after ${retryAfterMs} ms when the quota renews`,
          { retryAfterMs },
        )
      }
    }
    const cost = maxTokens * CREDITS_PER_OUTPUT_TOKEN
    const account = this.store.account(key.account)
    const reservedCredits = this.#reservedCredits.get(account.id) ?? 0
    if (account.balance - reservedCredits < cost) {
      return new LullError(
        ErrorCode.InsufficientCredits,
        `account ${account.id} has ${account.balance - reservedCredits} credits free (${account.balance} balance, ${reservedCredits} reserved by requests in flight) and this request may cost ${cost} (${maxTokens} max tokens × ${CREDITS_PER_OUTPUT_TOKEN}): lower maxTokens or ask the network operator for credits (lull-coordinator credits grant ${account.id} <amount>)`,
      )
    }
    this.#reservedCredits.set(account.id, reservedCredits + cost)
    this.#reservedTokens.set(key.id, (this.#reservedTokens.get(key.id) ?? 0) + maxTokens)
    this.#admissions.set(job.id, {
      client: key.id,
      clientAccount: key.account,
      keyId: key.id,
      reservedCredits: cost,
      reservedTokens: maxTokens,
      ...(quotaKey === undefined ? {} : { quotaKey }),
    })
    return undefined
  }

  /**
   * A node reported the end of `job`: checks its signed counts, then writes the usage record and moves the
   * credits in one transaction. Resolves once on disk, with why the counts were disputed (no credits moved), if
   * they were. Call before the client is told the request ended.
   */
  async settle(job: LedgerJob, nodeId: string, end: EndMessage, cancelled: boolean): Promise<{ disputed?: string }> {
    const admission = this.#release(job.id)
    if (admission === undefined || this.store === undefined) return {}
    const disputed = await this.#checkUsage(job, nodeId, end)
    const { promptTokens, outputTokens } = end.usage
    const charged = disputed === undefined && admission.clientAccount !== undefined
    const credits = charged ? outputTokens * CREDITS_PER_OUTPUT_TOKEN + promptTokens * CREDITS_PER_PROMPT_TOKEN : 0
    const nodeAccount = this.#nodes.get(nodeId)?.account
    await this.#tracked(
      writeUsage(
        this.store,
        {
          ...this.#recordBase(job, admission, cancelled ? 'cancelled' : 'completed'),
          node: nodeId,
          ...(nodeAccount === undefined ? {} : { nodeAccount }),
          promptTokens,
          outputTokens,
          credits,
          ...(disputed === undefined ? {} : { disputed }),
        },
        admission.quotaKey,
      ),
    )
    return disputed === undefined ? {} : { disputed }
  }

  /** `job` ended without a node's count (failed, cancelled, refused): its reservation is released and recorded. */
  async abandon(job: LedgerJob, outcome: Exclude<UsageOutcome, 'completed'>, nodeId?: string, errorCode?: string) {
    const admission = this.#release(job.id)
    if (admission === undefined || this.store === undefined) return
    await this.#tracked(
      writeUsage(this.store, {
        ...this.#recordBase(job, admission, outcome),
        ...(nodeId === undefined ? {} : { node: nodeId }),
        promptTokens: 0,
        outputTokens: 0,
        credits: 0,
        ...(errorCode === undefined ? {} : { errorCode }),
      }),
    )
  }

  /** Whether `jobId` holds an admission not yet settled or abandoned. */
  isAdmitted(jobId: string): boolean {
    return this.#admissions.has(jobId)
  }

  async close(): Promise<void> {
    while (this.#writes.size > 0) await Promise.allSettled([...this.#writes])
    await this.store?.close()
  }

  #tracked<T>(write: Promise<T>): Promise<T> {
    this.#writes.add(write)
    const done = (): void => {
      this.#writes.delete(write)
    }
    write.then(done, done)
    return write
  }

  #recordBase(job: LedgerJob, admission: Admission, outcome: UsageOutcome) {
    return {
      requestId: job.id,
      clientRequestId: job.clientRequestId,
      client: admission.client,
      ...(admission.clientAccount === undefined ? {} : { clientAccount: admission.clientAccount }),
      model: job.header.model,
      maxTokens: job.header.maxTokens,
      submittedAtMs: job.submittedAtMs,
      finishedAtMs: Date.now(),
      outcome,
    }
  }

  #release(jobId: string): Admission | undefined {
    const admission = this.#admissions.get(jobId)
    if (admission === undefined) return undefined
    this.#admissions.delete(jobId)
    if (admission.clientAccount !== undefined) {
      const left = (this.#reservedCredits.get(admission.clientAccount) ?? 0) - admission.reservedCredits
      if (left > 0) this.#reservedCredits.set(admission.clientAccount, left)
      else this.#reservedCredits.delete(admission.clientAccount)
    }
    if (admission.keyId !== undefined) {
      const left = (this.#reservedTokens.get(admission.keyId) ?? 0) - admission.reservedTokens
      if (left > 0) this.#reservedTokens.set(admission.keyId, left)
      else this.#reservedTokens.delete(admission.keyId)
    }
    return admission
  }

  /** Why the node's counts cannot be billed, or undefined when they can. */
  async #checkUsage(job: LedgerJob, nodeId: string, end: EndMessage): Promise<string | undefined> {
    const { promptTokens, outputTokens } = end.usage
    if (outputTokens > job.header.maxTokens) {
      return `the node reported ${outputTokens} output tokens for a request limited to ${job.header.maxTokens}`
    }
    if (promptTokens > job.header.sizeBucket + PROMPT_TEMPLATE_ALLOWANCE_TOKENS) {
      return `the node reported ${promptTokens} prompt tokens for a ${job.header.sizeBucket}-byte request`
    }
    if (end.usageSignature === undefined) return this.open ? undefined : 'the node did not sign its counts'
    const fields = { requestId: job.id, modelId: job.header.model, promptTokens, outputTokens }
    const valid = await verifyUsageSignature(fields, end.usageSignature, nodeId)
    return valid ? undefined : "the counts' signature does not verify for this node"
  }
}
