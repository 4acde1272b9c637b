import type { LullClient } from '@lull/client-sdk'
import {
  COORDINATOR_TO_CLIENT,
  COORDINATOR_TO_NODE,
  type CoordinatorToNode,
  MAX_DISPATCH_BATCH_REQUESTS,
  type RequestHeader,
} from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { messageOf } from './frames.js'
import { type PausableNetwork, startPausableNetwork } from './pausable-network.js'

const SLOTS = 4
const MAX_TOKENS = 24

describe('batched dispatch', () => {
  let network: PausableNetwork
  let client: LullClient
  /** Every message the coordinator sent to a node, in order. */
  const toNodes: CoordinatorToNode[] = []
  /** The type of every message the coordinator sent, to nodes and clients, in order. */
  const sent: string[] = []

  beforeAll(async () => {
    network = await startPausableNetwork({
      nodes: 1,
      slots: SLOTS,
      frameObserver: (direction, payload) => {
        if (direction !== 'out') return
        const toNode = messageOf(payload, COORDINATOR_TO_NODE)
        if (toNode !== undefined) {
          toNodes.push(toNode)
          sent.push(`node:${toNode.type}`)
        }
        const toClient = messageOf(payload, COORDINATOR_TO_CLIENT)
        if (toClient !== undefined) sent.push(`client:${toClient.type}`)
      },
    })
    client = await network.client()
    await network.waitForNodes(client, 1)
  })

  afterAll(async () => {
    await network?.stop()
  })

  const ask = (seed: number) =>
    client
      .chat({
        model: 'lull-tiny',
        messages: [{ role: 'user', content: `Tell me about the river ${seed}` }],
        maxTokens: MAX_TOKENS,
        temperature: 0,
        seed,
      })
      .final()

  it('sends requests placed on one node together in one dispatch-batch frame, and each answer is right', async () => {
    await network.pause()
    const seeds = [1, 2, 3, 4]
    const batched = seeds.map((seed) => ask(seed))
    await network.until(() => network.queued() === seeds.length, 'every request to queue')
    const before = toNodes.length
    // The node serves again: the coordinator places all four on its free slots at once.
    await network.resume()
    const answers = await Promise.all(batched)

    const dispatched = toNodes.slice(before).filter((message) => message.type !== 'cancel')
    expect(dispatched.map((message) => message.type)).toEqual(['dispatch-batch'])
    const batch = dispatched[0] as Extract<CoordinatorToNode, { type: 'dispatch-batch' }>
    expect(batch.requests).toHaveLength(seeds.length)
    expect(new Set(batch.requests.map((request) => request.requestId)).size).toBe(seeds.length)

    // The same requests one at a time (each a plain dispatch) give the same answers: greedy decoding is
    // deterministic, alone or alongside other sequences.
    for (const [index, seed] of seeds.entries()) {
      const sent = toNodes.length
      const alone = await ask(seed)
      expect(toNodes.slice(sent).map((message) => message.type)).toEqual(['dispatch'])
      expect(answers[index]?.text).toBe(alone.text)
      expect(alone.text.length).toBeGreaterThan(0)
    }
  })

  it('refuses a batch over its bounds at the boundary', () => {
    const header: RequestHeader = { model: 'lull-tiny', maxTokens: 1, sizeBucket: 0, candidates: ['n'], priority: 0 }
    const request = (index: number) => ({
      requestId: `request-${String(index).padStart(4, '0')}`,
      header,
      sealed: {
        ciphertext: new Uint8Array(16),
        keys: [{ nodeId: 'n', enc: new Uint8Array(32), wrappedKey: new Uint8Array(48) }],
      },
    })
    const ok = Array.from({ length: MAX_DISPATCH_BATCH_REQUESTS }, (_, index) => request(index))
    expect(COORDINATOR_TO_NODE.safeParse({ type: 'dispatch-batch', requests: ok }).success).toBe(true)
    const tooMany = [...ok, request(MAX_DISPATCH_BATCH_REQUESTS)]
    expect(COORDINATOR_TO_NODE.safeParse({ type: 'dispatch-batch', requests: tooMany }).success).toBe(false)
    expect(COORDINATOR_TO_NODE.safeParse({ type: 'dispatch-batch', requests: [] }).success).toBe(false)
  })

  it('tells the client where its request went only after the dispatch was written to the node', async () => {
    const from = sent.length
    const answer = await ask(99)
    expect(answer.text.length).toBeGreaterThan(0)
    const order = sent.slice(from).filter((type) => type === 'node:dispatch' || type === 'client:dispatched')
    expect(order).toEqual(['node:dispatch', 'client:dispatched'])
  })
})
