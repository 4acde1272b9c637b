import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LullClient } from '@lull/client-sdk'
import { type AccountsStore, queryUsage } from '@lull/coordinator'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { SCRIPTED_ANSWER, ScriptedNode, type ScriptedNodeOptions } from './scripted-node.js'

/**
 * With a ledger, the coordinator relays an answer's final sealed chunk only once the request's usage record is on
 * disk: a client never holds a whole answer whose usage a coordinator crash could still lose (the ledger durability
 * test once caught a client with a whole answer and no record, the coordinator killed in between). Scripted nodes
 * put the coordinator in the two situations exactly, without timing races.
 */
const REQUEST = { model: 'lull-tiny', messages: [{ role: 'user' as const, content: 'Hello' }], maxTokens: 8 }
const DIGEST = 'a'.repeat(64)

let dataDir: string
let network: TestNetwork
let client: LullClient
let store: AccountsStore
const scripted: ScriptedNode[] = []

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-final-chunk-'))
  // Open mode with a data dir: every request is recorded in the ledger (client "open").
  network = await startTestNetwork({ nodes: 0, coordinatorOptions: { dataDir } })
  client = await network.client()
  store = network.coordinator.accounts.store as AccountsStore
})

afterEach(async () => {
  await Promise.all(scripted.splice(0).map((node) => node.stop()))
})

afterAll(async () => {
  await network?.stop()
  await rm(dataDir, { recursive: true, force: true })
})

async function start(options: Omit<ScriptedNodeOptions, 'coordinator' | 'modelDigest'>): Promise<ScriptedNode> {
  const node = await ScriptedNode.start({ coordinator: network.address, modelDigest: DIGEST, ...options })
  scripted.push(node)
  return node
}

const recordsOf = (clientRequestId: string) =>
  queryUsage(store).records.filter((record) => record.clientRequestId === clientRequestId)

describe('the final chunk and the ledger', () => {
  it("reaches the client only once the request's usage record is on disk", async () => {
    // The node sends its final chunk, then its signed-for end only 300 ms later.
    const node = await start({ behaviour: { endAfterMs: 300 } })
    await network.waitForNodes(client, 1)
    const recordsBefore = queryUsage(store).records.length
    let text = ''
    let recordsWhenTextArrived: number | undefined
    let finish: { requestId: string; nodeId: string } | undefined
    for await (const event of client.chat(REQUEST)) {
      if (event.type === 'text-delta') {
        recordsWhenTextArrived ??= queryUsage(store).records.length
        text += event.text
      } else if (event.type === 'finish') finish = event
    }
    expect(text).toBe(SCRIPTED_ANSWER)
    expect(finish?.nodeId).toBe(node.nodeId)
    expect(recordsWhenTextArrived).toBe(recordsBefore + 1)
    expect(recordsOf(finish?.requestId as string)).toMatchObject([{ outcome: 'completed', outputTokens: 3 }])
  })

  it('is never relayed when its node leaves before its end: the request fails over and is answered once', async () => {
    // More free slots: the scheduler picks this node first.
    const leaving = await start({ behaviour: 'final-chunk-then-leave', slots: 128 })
    const answering = await start({ behaviour: 'answer', slots: 8 })
    await network.waitForNodes(client, 2)
    const dispatched: string[] = []
    const result = await client.chat({ ...REQUEST, onDispatched: ({ nodeId }) => dispatched.push(nodeId) }).final()
    expect(dispatched).toEqual([leaving.nodeId, answering.nodeId])
    expect(result.text).toBe(SCRIPTED_ANSWER)
    expect(result.nodeId).toBe(answering.nodeId)
    expect(recordsOf(result.requestId)).toMatchObject([{ outcome: 'completed', node: answering.nodeId }])
  })
})

describe('without a ledger (open mode, no data dir)', () => {
  let plain: TestNetwork
  let plainClient: LullClient

  beforeAll(async () => {
    plain = await startTestNetwork({ nodes: 0 })
    plainClient = await plain.client()
  })

  afterAll(async () => {
    await plain?.stop()
  })

  it('the final chunk is relayed at once, and a node that leaves before its end costs the answer nothing', async () => {
    const leaving = await ScriptedNode.start({
      coordinator: plain.address,
      modelDigest: DIGEST,
      behaviour: 'final-chunk-then-leave',
      slots: 128,
    })
    const answering = await ScriptedNode.start({
      coordinator: plain.address,
      modelDigest: DIGEST,
      behaviour: 'answer',
      slots: 8,
    })
    scripted.push(leaving, answering)
    await plain.waitForNodes(plainClient, 2)
    const dispatched: string[] = []
    const result = await plainClient.chat({ ...REQUEST, onDispatched: ({ nodeId }) => dispatched.push(nodeId) }).final()
    // The whole answer arrived before the node left: it is not resumed (that would append a second ending).
    expect(result.text).toBe(SCRIPTED_ANSWER)
    expect(result.nodeId).toBe(leaving.nodeId)
    expect(dispatched).toEqual([leaving.nodeId])
  })
})
