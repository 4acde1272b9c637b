import { AbortError, LullClient } from '@lull/client-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

/** Cancelling from the app's side: `signal` mid-stream and `await using` on the client. */
let network: TestNetwork

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 1, slots: 2 })
})

afterAll(async () => {
  await network?.stop()
})

const LONG_REQUEST = {
  model: 'lull-tiny',
  messages: [{ role: 'user' as const, content: 'Go on for a long time' }],
  maxTokens: 2000,
  // Greedy: lull-tiny then never ends early (a sampled answer may end after a few sentences).
  temperature: 0,
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
}

describe('the app cancels', () => {
  it('with its signal mid-stream: a typed AbortError, and the node stops generating', async () => {
    const client = await network.client()
    const node = network.nodes[0]!
    // Precondition: left alone, this request runs for hundreds of tokens, so the abort lands while it generates.
    const uncancelled = await client.chat(LONG_REQUEST).final()
    expect(uncancelled.usage.outputTokens).toBeGreaterThan(200)
    const servedBefore = node.stats.requestsServed
    const cancelledBefore = node.stats.requestsCancelled

    const controller = new AbortController()
    let deltas = 0
    let error: unknown
    try {
      for await (const event of client.chat({ ...LONG_REQUEST, signal: controller.signal })) {
        if (event.type === 'text-delta' && ++deltas === 2) controller.abort()
      }
    } catch (failure) {
      error = failure
    }

    expect(error).toBeInstanceOf(AbortError)
    expect(error).toMatchObject({ name: 'AbortError', code: 'cancelled', isRetryable: false })
    expect((error as AbortError).requestId).toMatch(/\S/)
    // The node, not just the client, stopped: the request counts as cancelled there and its slot is free.
    await until(() => node.stats.requestsCancelled > cancelledBefore)
    expect(node.stats.requestsCancelled).toBe(cancelledBefore + 1)
    expect(node.stats.requestsServed).toBe(servedBefore)
    expect(node.busySlots).toBe(0)
  })

  it('with an already aborted signal: nothing is sent', async () => {
    const client = await network.client()
    const node = network.nodes[0]!
    const servedBefore = node.stats.requestsServed + node.stats.requestsCancelled
    const controller = new AbortController()
    controller.abort()
    await expect(client.chat({ ...LONG_REQUEST, signal: controller.signal }).final()).rejects.toBeInstanceOf(AbortError)
    await expect(client.models({ signal: controller.signal })).rejects.toThrow()
    expect(node.stats.requestsServed + node.stats.requestsCancelled).toBe(servedBefore)
  })

  it('by leaving an `await using` scope: the client is closed', async () => {
    let escaped: LullClient | undefined
    {
      await using client = await LullClient.connect({ coordinator: network.address })
      escaped = client
      expect((await client.chat({ ...LONG_REQUEST, maxTokens: 4 }).final()).usage.outputTokens).toBe(4)
    }
    // Its libp2p host was stopped on the way out: it cannot reach the coordinator any more.
    await expect(escaped.models()).rejects.toThrow()
  })
})
