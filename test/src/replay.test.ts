import { LullClient } from '@lull/client-sdk'
import { type LullNode, type NodeStats, REPLAY_WINDOW_MS } from '@lull/node'
import type { DispatchMessage } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { HostileCoordinator } from './hostile-coordinator.js'
import { type HostileNetwork, startHostileNetwork } from './hostile-network.js'

let network: HostileNetwork
let hostile: HostileCoordinator
let nodes: LullNode[] = []

beforeAll(async () => {
  network = await startHostileNetwork(2)
  hostile = network.hostile
  nodes = network.nodes
})

afterAll(async () => {
  await network?.stop()
})

/**
 * Runs one honest request sealed for a single node and returns what the coordinator captured: the dispatch as the
 * node received it, and that node.
 */
async function captureRequest(): Promise<{ dispatch: DispatchMessage; node: LullNode; other: LullNode }> {
  hostile.mode = 'honest'
  const client = await LullClient.connect({ coordinator: hostile.address, candidates: 1 })
  try {
    const reply = await client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'Tell me a story' }], maxTokens: 16, seed: 3 })
      .final()
    expect(reply.text.length).toBeGreaterThan(0)
  } finally {
    await client.close()
  }
  const captured = hostile.dispatches.at(-1)
  if (captured === undefined) throw new Error('the coordinator captured no dispatch')
  const node = nodes.find((candidate) => candidate.nodeId === captured.nodeId)
  const other = nodes.find((candidate) => candidate.nodeId !== captured.nodeId)
  if (node === undefined || other === undefined) throw new Error('the request went to an unknown node')
  expect(captured.message.header.candidates).toEqual([node.nodeId])
  // Running a request is visible to the coordinator: the original produced sealed chunks.
  expect(hostile.chunksFor(captured.message.requestId).length).toBeGreaterThan(0)
  return { dispatch: captured.message, node, other }
}

/**
 * Replays `dispatch` to `node` and returns the error code the node answered with, after checking that the node
 * ran nothing: no chunk came back, no slot is busy, and its counters moved only by one failed request.
 */
async function replayAndExpectRefusal(node: LullNode, dispatch: DispatchMessage): Promise<string> {
  const before: NodeStats = node.stats
  const replayId = hostile.redispatch(node.nodeId, dispatch)
  // Wait for the node's answer: an error, or (if it ran the replay) its first chunk.
  const deadline = Date.now() + 10_000
  const errorFor = () => hostile.nodeErrors.find((candidate) => candidate.requestId === replayId)
  while (errorFor() === undefined && hostile.chunksFor(replayId).length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  // Anything the node had generated would have arrived before its error; give stragglers a moment anyway.
  await new Promise((resolve) => setTimeout(resolve, 100))
  expect(hostile.chunksFor(replayId), 'the node ran the replayed request').toEqual([])
  const error = errorFor()
  if (error === undefined) throw new Error('the node answered the replay with neither an error nor a chunk')
  expect(node.busySlots).toBe(0)
  expect(node.stats).toEqual({ ...before, requestsFailed: before.requestsFailed + 1 })
  return error.code
}

describe('a coordinator replaying a captured request', () => {
  it('gets it run zero times, refused as replayed, by the node it was sealed for', async () => {
    const { dispatch, node } = await captureRequest()
    expect(await replayAndExpectRefusal(node, dispatch)).toBe('replayed')
    // And again: a nonce stays refused for the whole window, however often it is replayed.
    expect(await replayAndExpectRefusal(node, dispatch)).toBe('replayed')
  })

  it('gets it refused as not-a-recipient by a node it was not sealed for', async () => {
    const { dispatch, other } = await captureRequest()
    expect(await replayAndExpectRefusal(other, dispatch)).toBe('not-a-recipient')
  })

  it('gets it refused as request-expired once the replay window has passed, before its nonce is even looked up', async () => {
    const { dispatch, node } = await captureRequest()
    // Move every clock in this process (the node's included) past the window, rather than waiting it out.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true })
    try {
      vi.setSystemTime(Date.now() + REPLAY_WINDOW_MS + 5_000)
      expect(await replayAndExpectRefusal(node, dispatch)).toBe('request-expired')
    } finally {
      vi.useRealTimers()
    }
    // Back inside the window it is a replay again: the nonce was never forgotten.
    expect(await replayAndExpectRefusal(node, dispatch)).toBe('replayed')
  })
})
