import type { LullClient } from '@lull/client-sdk'
import type { LullNode } from '@lull/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AWAY, ControlledSignals, OWNER_BACK } from './controlled-signals.js'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { until } from './until.js'

describe('idle policy on a real network', () => {
  let network: TestNetwork
  let client: LullClient
  const signals = [new ControlledSignals(), new ControlledSignals()]

  const coordinatorState = (node: LullNode) =>
    network.coordinator.status().nodes.find((entry) => entry.nodeId === node.nodeId)?.state

  async function setOwner(index: number, present: boolean): Promise<LullNode> {
    const node = network.nodes[index] as LullNode
    ;(signals[index] as ControlledSignals).current = present ? OWNER_BACK : AWAY
    // Owner-return is noticed at the next poll; the test polls now rather than waiting for it.
    await node.checkIdle()
    return node
  }

  const ask = (seed: number, maxTokens = 8) =>
    client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: `Hello ${seed}` }], maxTokens, seed }).final()

  beforeAll(async () => {
    network = await startTestNetwork({
      nodes: 2,
      slots: 2,
      nodeOptions: (index) => ({
        when: 'idle',
        idleSignals: signals[index] as ControlledSignals,
        // Polls come from the test (checkIdle); a slow background poll only repeats the same reading.
        idlePollIntervalMs: 60_000,
        graceMs: 300,
        statusFile: false,
      }),
    })
    client = await network.client()
    await network.waitForNodes(client, 2)
    for (const node of network.nodes) expect(node.state).toBe('serving')
  })

  afterAll(async () => {
    await network?.stop()
  })

  it('a paused node gets no dispatches while the other node serves, and serves again once idle', async () => {
    const [first, second] = network.nodes as [LullNode, LullNode]
    const paused = await setOwner(0, true)
    expect(paused.state).toBe('paused')
    expect(paused.idleStatus.reason).toContain('owner active')
    // The state change goes out in a heartbeat at once, not after the 5 s interval.
    await until(() => coordinatorState(first) === 'paused', 'the coordinator to see node 0 paused', 1_000)
    // The operator sees why, not just that.
    const listed = network.coordinator.status().nodes.find((entry) => entry.nodeId === first.nodeId)
    expect(listed?.stateReason).toBe(paused.idleStatus.reason)

    const before = { ...first.stats }
    const replies = []
    for (let seed = 0; seed < 8; seed++) replies.push(await ask(seed))
    expect(replies.every((reply) => reply.nodeId === second.nodeId)).toBe(true)
    expect(first.stats).toEqual(before)

    await setOwner(0, false)
    expect(first.state).toBe('serving')
    await until(() => coordinatorState(first) === 'serving', 'the coordinator to see node 0 serving', 1_000)
    // The scheduler prefers whichever node measured faster when both are free: with node 1 away, node 0 must serve.
    await setOwner(1, true)
    await until(() => coordinatorState(second) === 'paused', 'node 1 paused', 1_000)
    expect((await ask(100)).nodeId).toBe(first.nodeId)
    await setOwner(1, false)
    await until(() => coordinatorState(second) === 'serving', 'node 1 serving', 1_000)
  })

  it('owner returns mid-request: the node drains, then hands the request back after the grace period', async () => {
    const [first, second] = network.nodes as [LullNode, LullNode]
    // Only node 0 serves, so the long request lands there.
    await setOwner(1, true)
    await until(() => coordinatorState(second) === 'paused', 'node 1 paused', 1_000)
    const failedBefore = first.stats.requestsFailed

    const stream = client.chat({
      model: 'lull-tiny',
      messages: [{ role: 'user', content: 'Go on for a long time' }],
      maxTokens: 2000,
      // Greedy: lull-tiny then never ends early, so the answer outlasts the grace period on any machine.
      temperature: 0,
    })
    const iterator = stream[Symbol.asyncIterator]()
    const firstEvent = await iterator.next()
    expect(firstEvent.done).toBe(false)
    expect(first.busySlots).toBe(1)

    // The owner of node 0 comes back; node 1's owner has left, so it can take the handed-back work.
    await setOwner(1, false)
    await setOwner(0, true)
    expect(first.state).toBe('draining')
    await until(() => coordinatorState(first) === 'draining', 'the coordinator to see node 0 draining', 1_000)

    // Within the grace period (300 ms) the request still runs; after it, the node cancels and reports it lost.
    await until(() => first.state === 'paused', 'node 0 paused after the grace period', 5_000)
    await until(() => first.busySlots === 0, 'node 0 to release its slot', 5_000)
    expect(first.stats.requestsFailed).toBe(failedBefore + 1)
    expect(coordinatorState(first)).toBe('paused')

    // The client sees the hand-back: a retryable error, or (where failover resumes it) an answer from node 1.
    let outcome: 'error' | 'done' = 'done'
    try {
      for (;;) {
        const next = await iterator.next()
        if (next.done) break
      }
    } catch (error) {
      outcome = 'error'
      expect(error).toMatchObject({ isRetryable: true })
    }
    expect(['error', 'done']).toContain(outcome)
    await setOwner(0, false)
  })
})
