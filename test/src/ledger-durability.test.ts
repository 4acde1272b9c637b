import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { LullClient } from '@lull/client-sdk'
import { AccountsStore, createApiKey, createJoinToken, listAccounts, queryUsage } from '@lull/coordinator'
import { createLogger, LullNode } from '@lull/node'
import { afterAll, describe, expect, it } from 'vitest'
import { freePort } from './process-network.js'

/**
 * A coordinator killed with SIGKILL under load and restarted on the same address: every request a client saw
 * finish has exactly one completed usage record with the token counts the client received; no request is
 * recorded twice; every balance equals its grants and records. The coordinator runs as its own process (the
 * built CLI, not open, with a persistent identity); two real nodes and four SDK clients run in this process. The
 * nodes re-register on their own; the clients simply keep asking.
 */
const ROOT = resolve(import.meta.dirname, '..', '..')
const COORDINATOR_CLI = join(ROOT, 'coordinator/dist/cli.js')
const WORKERS = 4
const MAX_TOKENS = 24
/** Completions wanted before the kill, and again after the restart. */
const COMPLETIONS_PER_PHASE = 12
const PHASE_TIMEOUT_MS = 60_000
const PROMPT = [{ role: 'user' as const, content: 'Tell me about the harbour at night.' }]

let workDir: string | undefined
let coordinator: ChildProcess | undefined
const nodes: LullNode[] = []
const clients: LullClient[] = []

afterAll(async () => {
  await Promise.allSettled(clients.map((client) => client.close()))
  await Promise.allSettled(nodes.map((node) => node.stop()))
  coordinator?.kill('SIGKILL')
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true })
})

/** Starts `lull-coordinator start` and resolves with its address once it listens. */
async function startCoordinator(dataDir: string, port: number): Promise<string> {
  const readyFile = join(dataDir, `ready-${Date.now()}`)
  const child = spawn(
    process.execPath,
    [
      COORDINATOR_CLI,
      'start',
      '--data-dir',
      dataDir,
      '--listen',
      `/ip4/127.0.0.1/tcp/${port}`,
      '--ready-file',
      readyFile,
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString()
  })
  coordinator = child
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the coordinator exited: ${stderr}`)
    const address = await readFile(readyFile, 'utf8').catch(() => undefined)
    if (address !== undefined) return address.trim()
    await new Promise((done) => setTimeout(done, 100))
  }
  throw new Error(`the coordinator did not start within 30 s: ${stderr}`)
}

function killCoordinator(): Promise<void> {
  const child = coordinator
  if (child === undefined || child.exitCode !== null) return Promise.resolve()
  return new Promise((done) => {
    child.once('exit', () => done())
    child.kill('SIGKILL')
  })
}

describe('the ledger across a coordinator killed with SIGKILL', () => {
  it('keeps every completed request exactly once, with balances that match the records', async () => {
    workDir = await mkdtemp(join(tmpdir(), 'lull-ledger-'))
    const dataDir = join(workDir, 'coordinator')
    const setup = AccountsStore.open(dataDir)
    const { secret: joinToken } = await createJoinToken(setup, { name: 'nodes', account: 'operator' })
    const { secret: apiKey, key } = await createApiKey(setup, {
      name: 'load',
      credits: 1_000_000,
      ratePerSecond: 1_000,
      burst: 1_000,
    })
    await setup.close()
    const port = await freePort()
    const address = await startCoordinator(dataDir, port)

    for (let index = 0; index < 2; index++) {
      nodes.push(
        await LullNode.start({
          coordinator: address,
          model: 'lull-tiny',
          dataDir: join(workDir, `node-${index}`),
          joinToken,
          slots: 2,
          threads: 1,
          logger: createLogger('silent'),
        }),
      )
    }

    /** What clients saw finish: their request id and the usage they received. */
    const received = new Map<string, { promptTokens: number; outputTokens: number }>()
    /**
     * Answers the SDK resumed on another node after losing the first (a node's link can drop while the coordinator
     * restarts): each part is its own request with its own record, and only parts a node finished carry counts.
     */
    const resumed = new Set<string>()
    let failures = 0
    let inFlight = 0
    let duplicateAnswers = 0
    let stop = false
    const workers = Array.from({ length: WORKERS }, async (_, worker) => {
      const client = await LullClient.connect({ coordinator: address, apiKey, timeoutMs: 5_000 })
      clients.push(client)
      let round = 0
      while (!stop) {
        inFlight++
        try {
          const parts = new Set<string>()
          const answer = await client
            .chat({
              model: 'lull-tiny',
              messages: PROMPT,
              maxTokens: MAX_TOKENS,
              seed: worker * 1_000 + round++,
              onDispatched: ({ requestId }) => parts.add(requestId),
            })
            .final()
          if (received.has(answer.requestId)) duplicateAnswers++
          received.set(answer.requestId, answer.usage)
          if (parts.size > 1) resumed.add(answer.requestId)
        } catch {
          // The coordinator is down or the request was cut off: keep asking, as an app would.
          failures++
          await new Promise((done) => setTimeout(done, 100))
        } finally {
          inFlight--
        }
      }
    })

    const waitFor = async (count: number): Promise<void> => {
      const deadline = Date.now() + PHASE_TIMEOUT_MS
      while (received.size < count) {
        if (Date.now() > deadline) throw new Error(`only ${received.size} of ${count} requests finished in time`)
        await new Promise((done) => setTimeout(done, 20))
      }
    }
    await waitFor(COMPLETIONS_PER_PHASE)
    // Kill at a random moment while requests are in flight.
    await new Promise((done) => setTimeout(done, Math.random() * 300))
    const inFlightAtKill = inFlight
    await killCoordinator()
    // The kill lands under load: requests were in flight.
    expect(inFlightAtKill).toBeGreaterThan(0)
    const beforeKill = received.size
    expect(await startCoordinator(dataDir, port)).toBe(address)
    await waitFor(beforeKill + COMPLETIONS_PER_PHASE)
    stop = true
    await Promise.all(workers)
    await killCoordinator()

    expect(duplicateAnswers).toBe(0)
    const store = AccountsStore.open(dataDir)
    try {
      const { records } = queryUsage(store)
      const byClientRequest = new Map<string, number>()
      for (const record of records) {
        byClientRequest.set(record.clientRequestId, (byClientRequest.get(record.clientRequestId) ?? 0) + 1)
      }
      // No request counted twice.
      expect([...byClientRequest.values()].every((count) => count === 1)).toBe(true)
      // Nothing a client saw finish is lost, and the counts are the ones it received.
      for (const [requestId, usage] of received) {
        const record = records.find((each) => each.clientRequestId === requestId)
        if (resumed.has(requestId)) {
          // The finishing part is billed as its node counted it; the lost part's tokens were never signed for.
          expect(record, `record for resumed ${requestId}`).toMatchObject({ outcome: 'completed', client: key.id })
          expect(record?.outputTokens).toBeLessThanOrEqual(usage.outputTokens)
          expect(record?.credits).toBe(record?.outputTokens)
          continue
        }
        expect(record, `record for ${requestId}`).toMatchObject({
          outcome: 'completed',
          promptTokens: usage.promptTokens,
          outputTokens: usage.outputTokens,
          credits: usage.outputTokens,
          client: key.id,
        })
        expect(record?.disputed).toBeUndefined()
      }
      // Completed records the clients never saw finish: at most the requests in flight at the kill.
      const unseen = records.filter((each) => each.outcome === 'completed' && !received.has(each.clientRequestId))
      expect(unseen.length).toBeLessThanOrEqual(WORKERS)
      // Balances are exactly what the records say.
      for (const account of listAccounts(store)) {
        const paid = records
          .filter((each) => each.clientAccount === account.id)
          .reduce((sum, each) => sum + each.credits, 0)
        const earned = records
          .filter((each) => each.nodeAccount === account.id)
          .reduce((sum, each) => sum + each.credits, 0)
        expect(account.balance, account.id).toBe(account.granted - paid + earned)
      }
      // What the nodes signed for, over the answers clients received (a resumed answer's lost part is unsigned).
      const spent = [...received].reduce((sum, [requestId, usage]) => {
        if (!resumed.has(requestId)) return sum + usage.outputTokens
        return sum + (records.find((each) => each.clientRequestId === requestId)?.outputTokens ?? 0)
      }, 0)
      expect(store.account('operator').balance).toBeGreaterThanOrEqual(spent)
      console.log(
        `ledger durability: ${received.size} answers received (${beforeKill} before the kill, ${resumed.size} resumed), ${records.length} records, ${inFlightAtKill} requests in flight at the kill, ${unseen.length} completed but unseen, ${failures} client errors around the kill`,
      )
    } finally {
      await store.close()
    }
  }, 180_000)
})
