import { generateDirectly } from '@lull/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const PROMPT = 'Tell me about the little garden behind the old house. canary-7f3a9c1e'
const PARAMS = { temperature: 0.8, seed: 42, maxTokens: 48 }

/** Every frame payload the coordinator received or sent during the run. */
const frames: Uint8Array[] = []
let network: TestNetwork

beforeAll(async () => {
  network = await startTestNetwork({
    nodes: 2,
    slots: 2,
    frameObserver: (_direction, payload) => frames.push(Uint8Array.from(payload)),
  })
})

afterAll(async () => {
  await network?.stop()
})

function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle)) >= 0
}

describe('one private request, end to end', () => {
  it('streams exactly what node-llama-cpp produces when called directly', async () => {
    const client = await network.client()
    await network.waitForNodes(client, 2)

    const deltas: string[] = []
    let finish: { finishReason: string; outputTokens: number; nodeId: string } | undefined
    for await (const event of client.chat({
      model: 'lull-tiny',
      messages: [{ role: 'user', content: PROMPT }],
      ...PARAMS,
    })) {
      if (event.type === 'text-delta') deltas.push(event.text)
      else finish = { finishReason: event.finishReason, outputTokens: event.usage.outputTokens, nodeId: event.nodeId }
    }
    const streamed = deltas.join('')

    const node = network.nodes.find((candidate) => candidate.nodeId === finish?.nodeId)
    expect(node).toBeDefined()
    const direct = await generateDirectly({ modelPath: node!.model.path, prompt: PROMPT, ...PARAMS })

    expect(streamed.length).toBeGreaterThan(0)
    expect(streamed).toBe(direct)
    expect(deltas.length).toBeGreaterThan(1)
    expect(finish?.outputTokens).toBeGreaterThan(0)
    expect(['stop', 'length']).toContain(finish?.finishReason)

    // The coordinator saw frames in both directions, and none of them holds the prompt or any of the answer.
    expect(frames.length).toBeGreaterThan(4)
    const encoder = new TextEncoder()
    const secrets = [
      PROMPT,
      'canary-7f3a9c1e',
      'little garden',
      streamed,
      ...streamed.split(/\s+/).filter((word) => word.length >= 7),
    ]
    for (const secret of secrets) {
      const needle = encoder.encode(secret)
      const hits = frames.filter((frame) => containsBytes(frame, needle)).length
      expect(hits, `"${secret}" appeared in coordinator frames`).toBe(0)
    }
  })

  it('spreads concurrent requests over both nodes and answers every one', async () => {
    const client = await network.client()
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, index) =>
        client
          .chat({
            model: 'lull-tiny',
            messages: [{ role: 'user', content: `Question number ${index}` }],
            maxTokens: 24,
            seed: index,
          })
          .final(),
      ),
    )
    for (const result of results) {
      expect(result.text.length).toBeGreaterThan(0)
      expect(result.usage.outputTokens).toBeGreaterThan(0)
    }
    expect(new Set(results.map((result) => result.nodeId)).size).toBe(2)
  })

  it('refuses an unknown model with a typed error', async () => {
    const client = await network.client()
    await expect(
      client.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }).final(),
    ).rejects.toMatchObject({
      name: 'ModelNotFoundError',
      code: 'model-not-found',
      isRetryable: false,
    })
  })

  it('stops generating on the node when the caller leaves the loop', async () => {
    const client = await network.client()
    const request = {
      model: 'lull-tiny',
      messages: [{ role: 'user' as const, content: 'Go on for a long time' }],
      maxTokens: 2000,
      // Greedy: lull-tiny then never ends early (a sampled answer may end after a few sentences).
      temperature: 0,
    }
    // Precondition: left alone, this request runs for hundreds of tokens, so a cancel has time to land.
    const uncancelled = await client.chat(request).final()
    expect(uncancelled.usage.outputTokens).toBeGreaterThan(200)

    const totals = () => network.nodes.reduce((sum, node) => sum + node.stats.requestsCancelled, 0)
    const cancelledBefore = totals()
    for await (const event of client.chat(request)) {
      if (event.type === 'text-delta') break
    }
    const deadline = Date.now() + 10_000
    while (totals() === cancelledBefore && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20))
    expect(totals() - cancelledBefore).toBe(1)
    expect(network.nodes.map((node) => node.busySlots)).toEqual([0, 0])
  })
})
