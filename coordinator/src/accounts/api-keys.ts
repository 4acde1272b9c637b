import { API_KEY_PREFIX, DEFAULT_RATE_BURST, DEFAULT_RATE_PER_SECOND } from './constants.js'
import { grantInTransaction } from './ledger.js'
import type { ApiKeyRecord, KeyRole } from './records.js'
import { createPublicId, createSecret, hashSecret } from './secrets.js'
import type { AccountsStore } from './store.js'

export interface CreateApiKeyOptions {
  name: string
  /** The account it spends from. @default the new key's id */
  account?: string
  /** @default 'client' */
  role?: KeyRole
  /** Credits granted to the account now. @default 0 */
  credits?: number
  /** @default DEFAULT_RATE_PER_SECOND */
  ratePerSecond?: number
  /** @default DEFAULT_RATE_BURST */
  burst?: number
  /** Output tokens per UTC day; unlimited when omitted. */
  quotaTokens?: number
  nowMs?: number
}

/** Creates an API key; the secret is returned once and only its hash is stored. */
export async function createApiKey(
  store: AccountsStore,
  options: CreateApiKeyOptions,
): Promise<{ secret: string; key: ApiKeyRecord }> {
  const secret = createSecret(API_KEY_PREFIX)
  const id = createPublicId('key_')
  const key: ApiKeyRecord = {
    id,
    name: options.name,
    account: options.account ?? id,
    role: options.role ?? 'client',
    hash: hashSecret(secret),
    ratePerSecond: options.ratePerSecond ?? DEFAULT_RATE_PER_SECOND,
    burst: options.burst ?? DEFAULT_RATE_BURST,
    ...(options.quotaTokens === undefined ? {} : { quotaTokens: options.quotaTokens }),
    createdAtMs: options.nowMs ?? Date.now(),
  }
  await store.transaction(() => {
    store.keys.put(id, key)
    store.keyHashes.put(key.hash, id)
    grantInTransaction(store, key.account, options.credits ?? 0)
  })
  return { secret, key }
}

/** The key a secret belongs to, if it exists and is not revoked. Reads the latest committed state. */
export function findApiKey(store: AccountsStore, secret: string): ApiKeyRecord | undefined {
  const id = store.keyHashes.get(hashSecret(secret))
  const key = id === undefined ? undefined : store.keys.get(id)
  return key === undefined || key.revokedAtMs !== undefined ? undefined : key
}

export function listApiKeys(store: AccountsStore): ApiKeyRecord[] {
  return [...store.keys.getRange()].map(({ value }) => value).sort((a, b) => a.createdAtMs - b.createdAtMs)
}

/** Revokes a key by id; false when there is no such key. Revoking twice keeps the first time. */
export async function revokeApiKey(store: AccountsStore, id: string, nowMs = Date.now()): Promise<boolean> {
  return store.transaction(() => {
    const key = store.keys.get(id)
    if (key === undefined) return false
    if (key.revokedAtMs === undefined) store.keys.put(id, { ...key, revokedAtMs: nowMs })
    return true
  })
}
