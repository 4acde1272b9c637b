import { JOIN_TOKEN_PREFIX } from './constants.js'
import type { JoinTokenRecord } from './records.js'
import { createPublicId, createSecret, hashSecret } from './secrets.js'
import type { AccountsStore } from './store.js'

export interface CreateJoinTokenOptions {
  name: string
  /** The account credited for the work of nodes that join with it. @default the new token's id */
  account?: string
  nowMs?: number
}

/** Creates a join token; the secret is returned once and only its hash is stored. */
export async function createJoinToken(
  store: AccountsStore,
  options: CreateJoinTokenOptions,
): Promise<{ secret: string; token: JoinTokenRecord }> {
  const secret = createSecret(JOIN_TOKEN_PREFIX)
  const id = createPublicId('tok_')
  const token: JoinTokenRecord = {
    id,
    name: options.name,
    account: options.account ?? id,
    hash: hashSecret(secret),
    createdAtMs: options.nowMs ?? Date.now(),
  }
  await store.transaction(() => {
    store.tokens.put(id, token)
    store.tokenHashes.put(token.hash, id)
    if (store.accounts.get(token.account) === undefined) store.accounts.put(token.account, store.account(token.account))
  })
  return { secret, token }
}

/** The token a secret belongs to, if it exists and is not revoked. */
export function findJoinToken(store: AccountsStore, secret: string): JoinTokenRecord | undefined {
  const id = store.tokenHashes.get(hashSecret(secret))
  const token = id === undefined ? undefined : store.tokens.get(id)
  return token === undefined || token.revokedAtMs !== undefined ? undefined : token
}

export function listJoinTokens(store: AccountsStore): JoinTokenRecord[] {
  return [...store.tokens.getRange()].map(({ value }) => value).sort((a, b) => a.createdAtMs - b.createdAtMs)
}

/** Revokes a token by id; false when there is no such token. Nodes already registered stay until they reconnect. */
export async function revokeJoinToken(store: AccountsStore, id: string, nowMs = Date.now()): Promise<boolean> {
  return store.transaction(() => {
    const token = store.tokens.get(id)
    if (token === undefined) return false
    if (token.revokedAtMs === undefined) store.tokens.put(id, { ...token, revokedAtMs: nowMs })
    return true
  })
}
