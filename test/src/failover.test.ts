import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LullClient } from '@lull/client-sdk'
import { Coordinator, createLogger } from '@lull/coordinator'
import { generateDirectly } from '@lull/node'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { SCRIPTED_ANSWER, SCRIPTED_PARTIAL, ScriptedNode, type ScriptedNodeOptions } from './scripted-node.js'

/**
 * Failover before the first token. Each test pairs one real node (lull-tiny) with a scripted node that advertises
 * far more free slots, so the scheduler deterministically dispatches to the scripted node first; the script then
 * fails in a chosen way at a chosen moment (before or after its first chunk), with no timing involved.
 */
const PROMPT = 'Tell me about the lighthouse on the hill.'
const PARAMS = { temperature: 0.8, seed: 7, maxTokens: 32 }

let network: TestNetwork
let client: LullClient
let scripted: ScriptedNode | undefined

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 1, slots: 2 })
  client = await network.client()
})

afterAll(async () => {
  await network?.stop()
})

afterEach(async () => {
  await scripted?.stop()
  scripted = undefined
})

async function startScripted(options: Omit<ScriptedNodeOptions, 'coordinator' | 'modelDigest'>) {
  const real = network.nodes[0]!
  scripted = await ScriptedNode.start({
    coordinator: network.address,
    modelDigest: real.certificate.modelDigest,
    ...options,
  })
  await network.waitForNodes(client, 2)
  return scripted
}

async function collect(iterable: AsyncIterable<{ type: string; text?: string }>) {
  const events: Array<{ type: string; text?: string; nodeId?: string; requestId?: string }> = []
  for await (const event of iterable) events.push(event)
  return events
}

describe('failover before the first token', () => {
  it('moves a request whose node is lost before its first chunk to the other node: one complete answer', async () => {
    const node = await startScripted({ behaviour: 'hold' })
    const real = network.nodes[0]!
    const servedBefore = real.stats.requestsServed
    const stream = client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: PROMPT }], ...PARAMS })
    const events = collect(stream)
    // The scripted node holds the request and has sent nothing: now it crashes.
    const dispatch = await node.waitForDispatch()
    node.abortLink()
    const received = await events

    const text = received
      .filter((event) => event.type === 'text-delta')
      .map((event) => event.text)
      .join('')
    const finishes = received.filter((event) => event.type === 'finish')
    expect(finishes).toHaveLength(1)
    expect(finishes[0]?.nodeId).toBe(real.nodeId)
    const direct = await generateDirectly({ modelPath: real.model.path, prompt: PROMPT, ...PARAMS })
    expect(text).toBe(direct)
    expect(real.stats.requestsServed).toBe(servedBefore + 1)
    expect(node.dispatches).toHaveLength(1)

    // The coordinator explains what it did, and its counters saw it.
    const explained = network.coordinator.decisions.explain(finishes[0]?.requestId ?? '')
    expect(explained?.nodeRequestId).toBe(dispatch.requestId)
    expect(explained?.decisions.map((decision) => decision.event)).toEqual(['placed', 'failover', 'finished'])
    expect(explained?.decisions[1]).toMatchObject({ nodeId: real.nodeId, reason: expect.stringMatching(/link closed/) })
    expect(network.coordinator.registry.countersOf(node.nodeId)).toMatchObject({ errors: 1, failovers: 1 })
  })

  it.each(['engine-failed', 'no-capacity'] as const)(
    'moves a request whose node reports a retryable %s before its first chunk',
    async (code) => {
      const node = await startScripted({ behaviour: { error: code } })
      const real = network.nodes[0]!
      const reply = await client
        .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: PROMPT }], ...PARAMS })
        .final()
      expect(node.dispatches).toHaveLength(1)
      expect(reply.nodeId).toBe(real.nodeId)
      expect(reply.text).toBe(await generateDirectly({ modelPath: real.model.path, prompt: PROMPT, ...PARAMS }))
    },
  )

  it('does not retry an error that retrying cannot fix', async () => {
    const node = await startScripted({ behaviour: { error: 'invalid-request' } })
    await expect(
      client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: PROMPT }], ...PARAMS }).final(),
    ).rejects.toMatchObject({ code: 'invalid-request', isRetryable: false })
    expect(node.dispatches).toHaveLength(1)
  })

  it('gives the typed retryable node-lost error, saying how far it got, when the node is lost after its first chunk', async () => {
    const node = await startScripted({ behaviour: 'first-chunk-then-hold' })
    const real = network.nodes[0]!
    const servedBefore = real.stats.requestsServed
    const deltas: string[] = []
    const run = async () => {
      // The coordinator's own behaviour, with the SDK's resume turned off (test/src/resume.test.ts covers resume).
      const request = { model: 'lull-tiny', messages: [{ role: 'user' as const, content: PROMPT }], maxResumes: 0 }
      for await (const event of client.chat(request)) {
        if (event.type !== 'text-delta') continue
        deltas.push(event.text)
        node.abortLink()
      }
    }
    const error = await run().then(
      () => undefined,
      (failure: unknown) => failure,
    )
    expect(error).toMatchObject({ name: 'RemoteError', code: 'node-lost', isRetryable: true })
    expect((error as Error).message).toMatch(/after 1 sealed chunk\(s\) of the answer were relayed/)
    expect(deltas.join('')).toBe(SCRIPTED_PARTIAL)
    // The coordinator does not re-run it elsewhere: a second stream would duplicate what the client already has.
    expect(real.stats.requestsServed).toBe(servedBefore)
  })
})

describe('paused and draining nodes', () => {
  it.each(['paused', 'draining'] as const)('gives a %s node no work', async (state) => {
    const node = await startScripted({ behaviour: 'answer' })
    node.state = state
    node.heartbeat()
    const deadline = Date.now() + 5_000
    const stateOf = () => network.coordinator.status().nodes.find((entry) => entry.nodeId === node.nodeId)?.state
    while (stateOf() !== state && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(stateOf()).toBe(state)

    const reply = await client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'hello' }], maxTokens: 8, seed: 1 })
      .final()
    expect(reply.nodeId).toBe(network.nodes[0]!.nodeId)
    expect(node.dispatches).toHaveLength(0)

    // Back to serving: it is preferred again (more free slots).
    node.state = 'serving'
    node.heartbeat()
    while (stateOf() !== 'serving' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    const again = await client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'hello' }] }).final()
    expect(again).toMatchObject({ nodeId: node.nodeId, text: SCRIPTED_ANSWER })
  })
})

describe('stale nodes', () => {
  it('evicts a node that stops heartbeating and moves its request to another candidate', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'lull-evict-'))
    const coordinator = await Coordinator.start({
      open: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      logger: createLogger('silent'),
      nodeStaleAfterMs: 1_000,
      evictionIntervalMs: 100,
    })
    const address = coordinator.multiaddrs[0] as string
    const digest = network.nodes[0]!.certificate.modelDigest
    const nodes: ScriptedNode[] = []
    let local: LullClient | undefined
    try {
      const hung = await ScriptedNode.start({
        coordinator: address,
        modelDigest: digest,
        behaviour: 'hang',
        heartbeatMs: 100,
      })
      nodes.push(hung)
      const healthy = await ScriptedNode.start({
        coordinator: address,
        modelDigest: digest,
        behaviour: 'answer',
        slots: 1,
        heartbeatMs: 100,
      })
      nodes.push(healthy)
      local = await LullClient.connect({ coordinator: address })
      const reply = await local.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'hi' }] }).final()
      expect(hung.dispatches).toHaveLength(1)
      expect(reply).toMatchObject({ nodeId: healthy.nodeId, text: SCRIPTED_ANSWER })
      expect(coordinator.registry.get(hung.nodeId)).toBeUndefined()
      expect(coordinator.registry.get(healthy.nodeId)).toBeDefined()
      const explained = coordinator.decisions.explain(reply.requestId)
      expect(explained?.decisions[1]).toMatchObject({
        event: 'failover',
        reason: expect.stringMatching(/no heartbeat/),
      })
    } finally {
      await local?.close()
      await Promise.allSettled(nodes.map((node) => node.stop()))
      await coordinator.stop()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
