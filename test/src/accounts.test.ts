import { execFile } from 'node:child_process'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { LullClient } from '@lull/client-sdk'
import {
  type AccountsStore,
  type CreateApiKeyOptions,
  createApiKey,
  createJoinToken,
  listAccounts,
  queryUsage,
  AccountsStore as Store,
} from '@lull/coordinator'
import { createLogger, LullNode } from '@lull/node'
import { ErrorCode, LullError } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..', '..')
const COORDINATOR_CLI = join(ROOT, 'coordinator/dist/cli.js')

async function coordinatorCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [COORDINATOR_CLI, ...args], {
      env: { ...process.env, LULL_API_KEY: '', ...env },
      timeout: 60_000,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

const PROMPT = [{ role: 'user' as const, content: 'Tell me about the sea.' }]

/** The typed error a promise rejected with. */
async function rejection(promise: Promise<unknown>): Promise<LullError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  )
  expect(error).toBeInstanceOf(LullError)
  return error as LullError
}

describe('accounts on a real network (coordinator not open)', () => {
  let network: TestNetwork
  let coordinatorDir: string
  let store: AccountsStore
  const clients: LullClient[] = []

  async function client(apiKey: string | undefined): Promise<LullClient> {
    const connected = await LullClient.connect({
      coordinator: network.address,
      ...(apiKey === undefined ? {} : { apiKey }),
      maxRetries: 0,
    })
    clients.push(connected)
    return connected
  }

  async function key(options: Partial<CreateApiKeyOptions> = {}) {
    return createApiKey(store, { name: 'test', credits: 10_000, ...options })
  }

  beforeAll(async () => {
    // The join token has to exist before the node starts: make it in the data dir the coordinator will use.
    const { mkdtemp } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    coordinatorDir = await mkdtemp(join(tmpdir(), 'lull-accounts-coordinator-'))
    const setup = Store.open(coordinatorDir)
    const { secret: joinToken } = await createJoinToken(setup, { name: 'node-0', account: 'operator' })
    await setup.close()
    network = await startTestNetwork({
      nodes: 1,
      slots: 2,
      coordinatorOptions: { open: false, dataDir: coordinatorDir },
      nodeOptions: () => ({ joinToken }),
    })
    store = network.coordinator.accounts.store as AccountsStore
    const { secret } = await key()
    await network.waitForNodes(await client(secret), 1)
  })

  afterAll(async () => {
    await Promise.allSettled(clients.map((each) => each.close()))
    await network?.stop()
    const { rm } = await import('node:fs/promises')
    if (coordinatorDir !== undefined) await rm(coordinatorDir, { recursive: true, force: true })
  })

  it('a node with a wrong or missing join token cannot register, and is told what to do', async () => {
    for (const joinToken of ['lull_jt_not-a-token', undefined]) {
      const error = await rejection(
        LullNode.start({
          coordinator: network.address,
          model: 'lull-tiny',
          dataDir: join(network.dataDir, `intruder-${joinToken === undefined ? 'none' : 'wrong'}`),
          slots: 1,
          threads: 1,
          logger: createLogger('silent'),
          ...(joinToken === undefined ? {} : { joinToken }),
        }),
      )
      expect(error.code).toBe(ErrorCode.Unauthorized)
      expect(error.message).toMatch(/--join-token/)
    }
    expect(network.coordinator.status().nodes).toHaveLength(1)
  })

  it('a node whose join token is revoked (by the CLI) is dropped at its next heartbeat', async () => {
    const { secret, token } = await createJoinToken(store, { name: 'short-lived' })
    const node = await LullNode.start({
      coordinator: network.address,
      model: 'lull-tiny',
      dataDir: join(network.dataDir, 'short-lived'),
      joinToken: secret,
      slots: 1,
      threads: 1,
      logger: createLogger('silent'),
    })
    try {
      expect(network.coordinator.status().nodes.map((each) => each.nodeId)).toContain(node.nodeId)
      const revoked = await coordinatorCli(['tokens', 'revoke', token.id, '--data-dir', coordinatorDir])
      expect(revoked.code).toBe(0)
      const deadline = Date.now() + 20_000
      while (network.coordinator.status().nodes.some((each) => each.nodeId === node.nodeId)) {
        expect(Date.now()).toBeLessThan(deadline)
        await new Promise((done) => setTimeout(done, 100))
      }
      expect(network.coordinator.status().nodes).toHaveLength(1)
    } finally {
      await node.stop()
    }
  })

  it('a client without a valid key is refused before anything runs', async () => {
    const anonymous = await client(undefined)
    expect((await rejection(anonymous.models())).code).toBe(ErrorCode.Unauthorized)
    const impostor = await client('lull_sk_not-a-key')
    const error = await rejection(impostor.models())
    expect(error.code).toBe(ErrorCode.Unauthorized)
    expect(error.message).toMatch(/keys create/)
  })

  it('a key revoked mid-session (by the CLI, another process) is refused on the very next request', async () => {
    const { secret, key: record } = await key()
    const session = await client(secret)
    const answer = await session.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: 8 }).final()
    expect(answer.usage.outputTokens).toBeGreaterThan(0)
    const revoked = await coordinatorCli(['keys', 'revoke', record.id, '--data-dir', coordinatorDir, '--json'])
    expect(revoked.code).toBe(0)
    const error = await rejection(session.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: 8 }).final())
    expect(error.code).toBe(ErrorCode.Unauthorized)
  })

  it('credits move exactly as the records say, and a request the balance cannot cover is never dispatched', async () => {
    const { secret, key: record } = await key({ credits: 200 })
    const session = await client(secret)
    const answers = []
    for (let index = 0; index < 3; index++) {
      answers.push(await session.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: 32, seed: index }).final())
    }
    const { records } = queryUsage(store, { client: record.id })
    expect(records).toHaveLength(3)
    for (const answer of answers) {
      const matching = records.filter((each) => each.clientRequestId === answer.requestId)
      expect(matching).toHaveLength(1)
      expect(matching[0]).toMatchObject({
        outcome: 'completed',
        promptTokens: answer.usage.promptTokens,
        outputTokens: answer.usage.outputTokens,
        credits: answer.usage.outputTokens,
        nodeAccount: 'operator',
      })
      expect(matching[0]?.disputed).toBeUndefined()
    }
    const spent = answers.reduce((sum, answer) => sum + answer.usage.outputTokens, 0)
    expect(store.account(record.account).balance).toBe(200 - spent)

    // Every account's balance is what its grants and records say.
    const all = queryUsage(store).records
    for (const account of listAccounts(store)) {
      const paid = all.filter((each) => each.clientAccount === account.id).reduce((sum, each) => sum + each.credits, 0)
      const earned = all.filter((each) => each.nodeAccount === account.id).reduce((sum, each) => sum + each.credits, 0)
      expect(account.balance).toBe(account.granted - paid + earned)
    }

    const servedBefore = network.coordinator.status().totals.requestsServed
    const error = await rejection(
      session.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: 200 - spent + 1 }).final(),
    )
    expect(error.code).toBe(ErrorCode.InsufficientCredits)
    expect(error.isRetryable).toBe(false)
    expect(network.coordinator.status().totals.requestsServed).toBe(servedBefore)
    expect(queryUsage(store, { client: record.id }).records).toHaveLength(3)
    expect(store.account(record.account).balance).toBe(200 - spent)
  })

  it('rate limits and quotas refuse with typed errors that say when to retry', async () => {
    const limited = await client((await key({ ratePerSecond: 0.01, burst: 1 })).secret)
    await limited.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: 4 }).final()
    const rateError = await rejection(limited.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: 4 }).final())
    expect(rateError.code).toBe(ErrorCode.RateLimited)
    expect(rateError.retryAfterMs).toBeGreaterThan(0)

    const quota = await client((await key({ quotaTokens: 40 })).secret)
    const first = await quota.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: 30 }).final()
    const left = 40 - first.usage.outputTokens
    const quotaError = await rejection(
      quota.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: left + 1 }).final(),
    )
    expect(quotaError.code).toBe(ErrorCode.QuotaExceeded)
    expect(quotaError.retryAfterMs).toBeGreaterThan(0)
    const fits = await quota.chat({ model: 'lull-tiny', messages: PROMPT, maxTokens: left }).final()
    expect(fits.usage.outputTokens).toBeLessThanOrEqual(left)
  })

  it('the admin view needs a key with the admin role', async () => {
    const address = ['--coordinator', network.address, '--json']
    const none = await coordinatorCli(['status', ...address])
    expect(none.code).not.toBe(0)
    expect(none.stderr).toMatch(/API key/)
    const clientKey = await coordinatorCli(['status', ...address, '--api-key', (await key()).secret])
    expect(clientKey.code).not.toBe(0)
    expect(clientKey.stderr).toMatch(/--admin/)
    const admin = await coordinatorCli(['status', ...address], { LULL_API_KEY: (await key({ role: 'admin' })).secret })
    expect(admin.code).toBe(0)
    expect(JSON.parse(admin.stdout).nodes).toHaveLength(1)
  })
})
