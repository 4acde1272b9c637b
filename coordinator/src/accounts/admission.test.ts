import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type EndMessage, ErrorCode, LullError, signUsage } from '@lull/proto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Accounts, type LedgerJob } from './admission.js'
import { createApiKey, revokeApiKey } from './api-keys.js'
import { createJoinToken } from './join-tokens.js'
import { listAccounts, queryUsage, writeUsage } from './ledger.js'
import { AccountsStore } from './store.js'

let dataDir: string
let store: AccountsStore
let nodeKey: PrivateKey
let nodeId: string
let jobs = 0

function job(maxTokens: number): LedgerJob {
  jobs++
  return {
    id: `job_${String(jobs).padStart(8, '0')}`,
    clientRequestId: `client_${String(jobs).padStart(8, '0')}`,
    header: { model: 'lull-tiny', maxTokens, sizeBucket: 1024, candidates: [nodeId], priority: 0 },
    submittedAtMs: Date.now(),
  }
}

async function signedEnd(forJob: LedgerJob, promptTokens: number, outputTokens: number): Promise<EndMessage> {
  const fields = { requestId: forJob.id, modelId: forJob.header.model, promptTokens, outputTokens }
  return {
    type: 'end',
    requestId: forJob.id,
    usage: { promptTokens, outputTokens },
    usageSignature: await signUsage(fields, nodeKey),
  }
}

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-accounts-'))
  store = AccountsStore.open(dataDir)
  nodeKey = await generateKeyPair('Ed25519')
  nodeId = peerIdFromPrivateKey(nodeKey).toString()
})

afterEach(async () => {
  await store.close()
  await rm(dataDir, { recursive: true, force: true })
})

describe('accounts', () => {
  it('reserves before dispatch, then moves exactly the signed output tokens from client to node', async () => {
    const { secret, key } = await createApiKey(store, { name: 'app', credits: 100 })
    const { secret: joinToken, token } = await createJoinToken(store, { name: 'node', account: 'operator' })
    const accounts = new Accounts(store, false)
    expect(accounts.admitNode(nodeId, joinToken)).toBeUndefined()
    expect(accounts.accountOf(secret)).toBe(key.account)
    expect(accounts.accountOf('lull_sk_unknown')).toBeUndefined()

    const first = job(60)
    expect(accounts.admit(first, secret)).toBeUndefined()
    // 60 of 100 credits are reserved: a second request that may cost 60 cannot be covered.
    const refused = accounts.admit(job(60), secret)
    expect(refused).toBeInstanceOf(LullError)
    expect((refused as LullError).code).toBe(ErrorCode.InsufficientCredits)

    expect(await accounts.settle(first, nodeId, await signedEnd(first, 20, 37), false)).toEqual({})
    const balances = Object.fromEntries(listAccounts(store).map((account) => [account.id, account.balance]))
    expect(balances[key.account]).toBe(63)
    expect(balances[token.account]).toBe(37)
    const { records } = queryUsage(store)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ outcome: 'completed', outputTokens: 37, promptTokens: 20, credits: 37 })
    // The reservation was released: 63 credits cover a 60-token request again.
    expect(accounts.admit(job(60), secret)).toBeUndefined()
  })

  it('records a bad or missing signature as disputed and moves no credits', async () => {
    const { secret } = await createApiKey(store, { name: 'app', credits: 100 })
    const { secret: joinToken } = await createJoinToken(store, { name: 'node' })
    const accounts = new Accounts(store, false)
    accounts.admitNode(nodeId, joinToken)
    const forged = job(50)
    accounts.admit(forged, secret)
    const end = await signedEnd(forged, 10, 5)
    const verdict = await accounts.settle(
      forged,
      nodeId,
      { ...end, usage: { promptTokens: 10, outputTokens: 50 } },
      false,
    )
    expect(verdict.disputed).toMatch(/signature/)
    const unsigned = job(50)
    accounts.admit(unsigned, secret)
    const { usageSignature: _dropped, ...bare } = await signedEnd(unsigned, 10, 5)
    expect((await accounts.settle(unsigned, nodeId, bare, false)).disputed).toMatch(/did not sign/)
    const tooMany = job(4)
    accounts.admit(tooMany, secret)
    expect((await accounts.settle(tooMany, nodeId, await signedEnd(tooMany, 10, 5), false)).disputed).toMatch(
      /limited to 4/,
    )
    const { records, totals } = queryUsage(store)
    expect(records).toHaveLength(3)
    expect(totals.credits).toBe(0)
    expect(totals.disputed).toBe(3)
    expect(listAccounts(store).every((account) => account.balance === account.granted)).toBe(true)
  })

  it('writes a request once: a second record for the same request id changes nothing', async () => {
    const { key } = await createApiKey(store, { name: 'app', credits: 100 })
    const record = {
      requestId: 'job_twice000',
      clientRequestId: 'client_twice0',
      client: key.id,
      clientAccount: key.account,
      node: nodeId,
      nodeAccount: 'operator',
      model: 'lull-tiny',
      maxTokens: 10,
      promptTokens: 3,
      outputTokens: 10,
      credits: 10,
      submittedAtMs: 1,
      finishedAtMs: 2,
      outcome: 'completed' as const,
    }
    expect(await writeUsage(store, record)).toBe(true)
    expect(await writeUsage(store, record)).toBe(false)
    expect(queryUsage(store).records).toHaveLength(1)
    expect(store.account(key.account).balance).toBe(90)
    expect(store.account('operator').balance).toBe(10)
  })

  it('refuses revoked keys, unknown join tokens, over-rate and over-quota requests with typed errors', async () => {
    const { secret, key } = await createApiKey(store, { name: 'app', credits: 1_000, ratePerSecond: 1, burst: 2 })
    const quotaKey = await createApiKey(store, { name: 'quota', credits: 1_000, quotaTokens: 100 })
    const accounts = new Accounts(store, false)
    expect(accounts.admitNode(nodeId, 'lull_jt_wrong')?.code).toBe(ErrorCode.Unauthorized)
    expect(accounts.admitNode(nodeId, undefined)?.message).toMatch(/--join-token/)
    expect(accounts.admit(job(1), undefined)?.code).toBe(ErrorCode.Unauthorized)

    const nowMs = Date.now()
    expect(accounts.admit(job(1), secret, nowMs)).toBeUndefined()
    expect(accounts.admit(job(1), secret, nowMs)).toBeUndefined()
    const limited = accounts.admit(job(1), secret, nowMs)
    expect(limited?.code).toBe(ErrorCode.RateLimited)
    expect(limited?.retryAfterMs).toBeGreaterThan(0)
    expect(limited?.isRetryable).toBe(true)

    const within = job(60)
    expect(accounts.admit(within, quotaKey.secret)).toBeUndefined()
    const over = accounts.admit(job(41), quotaKey.secret)
    expect(over?.code).toBe(ErrorCode.QuotaExceeded)
    expect(over?.retryAfterMs).toBeGreaterThan(0)
    await accounts.settle(within, nodeId, await signedEnd(within, 5, 30), false)
    // 30 used, nothing reserved: 70 fit, 71 do not.
    expect(accounts.admit(job(71), quotaKey.secret)?.code).toBe(ErrorCode.QuotaExceeded)
    expect(accounts.admit(job(70), quotaKey.secret)).toBeUndefined()

    await revokeApiKey(store, key.id)
    expect(accounts.admit(job(1), secret, nowMs + 10_000)?.code).toBe(ErrorCode.Unauthorized)
  })

  it('records a request that ended without a count (failed, cancelled) and releases its reservation', async () => {
    const { secret, key } = await createApiKey(store, { name: 'app', credits: 50 })
    const accounts = new Accounts(store, false)
    const failed = job(50)
    expect(accounts.admit(failed, secret)).toBeUndefined()
    expect(accounts.admit(job(50), secret)?.code).toBe(ErrorCode.InsufficientCredits)
    await accounts.abandon(failed, 'failed', nodeId, ErrorCode.NodeLost)
    const cancelled = job(50)
    expect(accounts.admit(cancelled, secret)).toBeUndefined()
    await accounts.abandon(cancelled, 'cancelled')
    const { records } = queryUsage(store, { client: key.id })
    expect(records.map((record) => [record.outcome, record.credits, record.errorCode])).toEqual([
      ['failed', 0, ErrorCode.NodeLost],
      ['cancelled', 0, undefined],
    ])
    expect(store.account(key.account).balance).toBe(50)
  })

  it('in open mode records usage for client "open" and moves no credits', async () => {
    const accounts = new Accounts(store, true)
    expect(accounts.admitNode(nodeId, undefined)).toBeUndefined()
    const open = job(20)
    expect(accounts.admit(open, undefined)).toBeUndefined()
    const { usageSignature: _unsigned, ...end } = await signedEnd(open, 4, 9)
    expect(await accounts.settle(open, nodeId, end, false)).toEqual({})
    expect(queryUsage(store).records).toMatchObject([{ client: 'open', outputTokens: 9, credits: 0 }])
    expect(listAccounts(store)).toEqual([])
  })
})
