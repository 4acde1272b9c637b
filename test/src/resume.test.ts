import { LullClient } from '@lull/client-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { SCRIPTED_PARTIAL, ScriptedNode } from './scripted-node.js'

/**
 * Resuming an answer whose node is lost after its first chunk: one real node (lull-tiny) plus a scripted node that
 * the scheduler prefers (more free slots), which sends one real sealed chunk of text and then crashes.
 */
const PROMPT = 'Tell me about the lighthouse on the hill.'

let network: TestNetwork
let client: LullClient
let scripted: ScriptedNode | undefined

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 1, slots: 2 })
  client = await LullClient.connect({ coordinator: network.address, maxResumes: 2 })
})

afterAll(async () => {
  await client?.close()
  await scripted?.stop()
  await network?.stop()
})

describe('resume after the first token', () => {
  it('continues an answer whose node is lost after its first chunk on another node: one complete answer', async () => {
    const real = network.nodes[0]!
    scripted = await ScriptedNode.start({
      coordinator: network.address,
      modelDigest: real.certificate.modelDigest,
      behaviour: 'first-chunk-then-hold',
    })
    await network.waitForNodes(client, 2)
    const node = scripted
    const servedBefore = real.stats.requestsServed

    const events: Array<{ type: string; text?: string; nodeId?: string; usage?: { outputTokens: number } }> = []
    let error: unknown
    try {
      for await (const event of client.chat({
        model: 'lull-tiny',
        messages: [{ role: 'user', content: PROMPT }],
        temperature: 0.8,
        seed: 7,
        maxTokens: 32,
      })) {
        events.push(event)
        // The scripted partial text arrived: now its node crashes.
        if (event.type === 'text-delta' && events.length === 1) node.abortLink()
      }
    } catch (failure) {
      error = failure
    }

    expect(error).toBeUndefined()
    expect(node.dispatches).toHaveLength(1)
    const text = events
      .filter((event) => event.type === 'text-delta')
      .map((event) => event.text)
      .join('')
    expect(events[0]).toEqual({ type: 'text-delta', text: SCRIPTED_PARTIAL })
    expect(text.startsWith(SCRIPTED_PARTIAL)).toBe(true)
    expect(text.indexOf(SCRIPTED_PARTIAL, 1)).toBe(-1)
    expect(text.length).toBeGreaterThan(SCRIPTED_PARTIAL.length)
    const finishes = events.filter((event) => event.type === 'finish')
    expect(finishes).toHaveLength(1)
    expect(events.at(-1)?.type).toBe('finish')
    expect(finishes[0]?.nodeId).toBe(real.nodeId)
    expect(finishes[0]?.usage?.outputTokens).toBeGreaterThan(0)
    expect(real.stats.requestsServed).toBe(servedBefore + 1)
  })
})
