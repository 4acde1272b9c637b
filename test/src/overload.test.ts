import { createProxyServer, LullClient } from '@lull/client-sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { ScriptedNode } from './scripted-node.js'

// One node with one slot that holds whatever it is given, and a coordinator that lets one request wait: the
// third concurrent request finds the network saturated.
let network: TestNetwork
let node: ScriptedNode
let client: LullClient
const holders = new AbortController()

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 0, coordinatorOptions: { maxQueuedRequestsPerModel: 1 } })
  node = await ScriptedNode.start({
    coordinator: network.address,
    modelDigest: 'c'.repeat(64),
    slots: 1,
    behaviour: 'hold',
    heartbeatMs: 1_000,
  })
  client = await LullClient.connect({ coordinator: network.address, maxRetries: 0 })
  const deadline = Date.now() + 10_000
  while (((await client.models())[0]?.nodes.length ?? 0) < 1) {
    if (Date.now() > deadline) throw new Error('the scripted node did not register')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const hold = (content: string) =>
    client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content }], signal: holders.signal })
      .final()
      .catch(() => undefined)
  void hold('takes the only slot')
  await node.waitForDispatch()
  void hold('waits in the queue')
  while ((network.coordinator.status().totals.queued.find((entry) => entry.modelId === 'lull-tiny')?.depth ?? 0) < 1) {
    if (Date.now() > deadline) throw new Error('the second request did not queue')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
})

afterAll(async () => {
  holders.abort()
  await client?.close()
  await node?.stop()
  await network?.stop()
})

describe('an overloaded network', () => {
  it('refuses the next request at once with a typed, retryable overloaded error carrying retry-after', async () => {
    const error = await client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'one more' }] })
      .final()
      .catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'overloaded', isRetryable: true, retryAfterMs: 1_000 })
  })

  it('reaches an OpenAI client through lull proxy as 503 with Retry-After', async () => {
    const proxy = await createProxyServer({ client, port: 0 })
    try {
      const openai = new OpenAI({ baseURL: proxy.baseUrl, apiKey: 'unused', maxRetries: 0 })
      const error = await openai.chat.completions
        .create({ model: 'lull-tiny', messages: [{ role: 'user', content: 'and another' }] })
        .catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(OpenAI.InternalServerError)
      expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503)
      expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('overloaded')
      expect((error as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toBe('1')
    } finally {
      await proxy.close()
    }
  })
})
