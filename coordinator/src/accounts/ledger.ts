import type { AccountRecord, UsageOutcome, UsageRecord } from './records.js'
import type { AccountsStore } from './store.js'

/**
 * Writes one usage record and the balance moves it implies, in one transaction: `credits` leave the client's
 * account and reach the node's, and a completed request's output tokens count against the key's quota.
 * Resolves once committed and on disk; resolves `false` (and changes nothing) when a record for the same request
 * id already exists, so a request is counted exactly once.
 */
export function writeUsage(store: AccountsStore, record: UsageRecord, quotaKey?: string): Promise<boolean> {
  return store.transaction(() => {
    if (store.usage.get(record.requestId) !== undefined) return false
    store.usage.put(record.requestId, record)
    if (record.credits > 0 && record.clientAccount !== undefined) {
      const payer = store.account(record.clientAccount)
      store.accounts.put(payer.id, {
        ...payer,
        balance: payer.balance - record.credits,
        spent: payer.spent + record.credits,
      })
    }
    if (record.credits > 0 && record.nodeAccount !== undefined) {
      const payee = store.account(record.nodeAccount)
      store.accounts.put(payee.id, {
        ...payee,
        balance: payee.balance + record.credits,
        earned: payee.earned + record.credits,
      })
    }
    if (quotaKey !== undefined && record.disputed === undefined && record.outputTokens > 0) {
      store.quota.put(quotaKey, (store.quota.get(quotaKey) ?? 0) + record.outputTokens)
    }
    return true
  })
}

/** Grants credits to an account (creating it). */
export function grantCredits(store: AccountsStore, accountId: string, credits: number): Promise<AccountRecord> {
  return store.transaction(() => grantInTransaction(store, accountId, credits))
}

/** Adds `credits` to an account (creating it) and returns it. Call inside a store transaction. */
export function grantInTransaction(store: AccountsStore, accountId: string, credits: number): AccountRecord {
  const account = store.account(accountId)
  const next = { ...account, balance: account.balance + credits, granted: account.granted + credits }
  store.accounts.put(accountId, next)
  return next
}

export interface UsageQuery {
  /** API key id (or `open`). */
  client?: string
  node?: string
  /** Records finished at or after this time. */
  sinceMs?: number
}

export interface UsageTotals {
  requests: number
  promptTokens: number
  outputTokens: number
  credits: number
  disputed: number
  byOutcome: Record<UsageOutcome, number>
}

/** The records matching `query`, oldest first, with their totals. */
export function queryUsage(
  store: AccountsStore,
  query: UsageQuery = {},
): { records: UsageRecord[]; totals: UsageTotals } {
  const records: UsageRecord[] = []
  for (const { value } of store.usage.getRange()) {
    if (query.client !== undefined && value.client !== query.client) continue
    if (query.node !== undefined && value.node !== query.node) continue
    if (query.sinceMs !== undefined && value.finishedAtMs < query.sinceMs) continue
    records.push(value)
  }
  records.sort((a, b) => a.finishedAtMs - b.finishedAtMs)
  const totals: UsageTotals = {
    requests: records.length,
    promptTokens: 0,
    outputTokens: 0,
    credits: 0,
    disputed: 0,
    byOutcome: { completed: 0, cancelled: 0, failed: 0 },
  }
  for (const record of records) {
    totals.promptTokens += record.promptTokens
    totals.outputTokens += record.outputTokens
    totals.credits += record.credits
    if (record.disputed !== undefined) totals.disputed++
    totals.byOutcome[record.outcome]++
  }
  return { records, totals }
}

export function listAccounts(store: AccountsStore): AccountRecord[] {
  return [...store.accounts.getRange()].map(({ value }) => value).sort((a, b) => a.id.localeCompare(b.id))
}
