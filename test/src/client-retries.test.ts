import { join } from 'node:path'
import { LullClient, type RetryInfo } from '@lull/client-sdk'
import { createLogger as createNodeLogger, LullNode } from '@lull/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { until } from './until.js'

const REQUEST = { model: 'lull-tiny', messages: [{ role: 'user' as const, content: 'Hello there' }], maxTokens: 16 }

describe('retries before the first token', () => {
  let network: TestNetwork
  const stale: LullClient[] = []
  const retries: RetryInfo[] = []
  let replacementId: string

  beforeAll(async () => {
    network = await startTestNetwork({ nodes: 1, slots: 2 })
    const watcher = await network.client()
    await network.waitForNodes(watcher, 1)
    // Two clients that fetch the catalogue now and keep it: it lists only the first node.
    for (const maxRetries of [0, 2]) {
      const client = await LullClient.connect({
        coordinator: network.address,
        catalogueMaxAgeMs: 600_000,
        maxRetries,
        onRetry: (info) => retries.push(info),
      })
      await client.models()
      stale.push(client)
    }
    // The first node is replaced by a new one (new identity, new key): the cached catalogue is now stale.
    const replacement = await LullNode.start({
      coordinator: network.address,
      model: 'lull-tiny',
      dataDir: join(network.dataDir, 'replacement'),
      slots: 2,
      threads: 1,
      logger: createNodeLogger('silent'),
    })
    network.nodes.push(replacement)
    replacementId = replacement.nodeId
    await network.waitForNodes(watcher, 2)
    const first = network.nodes.shift() as LullNode
    await first.stop()
    await until(
      async () => (await watcher.models()).find((model) => model.id === 'lull-tiny')?.nodes.length === 1,
      'the first node to leave the catalogue',
      20_000,
      100,
    )
  })

  afterAll(async () => {
    await Promise.allSettled(stale.map((client) => client.close()))
    await network?.stop()
  })

  it('without retries, a request sealed for a node that left fails retryably (the precondition)', async () => {
    await expect((stale[0] as LullClient).chat(REQUEST).final()).rejects.toMatchObject({
      code: 'no-capacity',
      isRetryable: true,
    })
    expect(retries).toEqual([])
  })

  it('with retries, it fetches the catalogue again, re-seals for a current node and answers', async () => {
    const result = await (stale[1] as LullClient).chat({ ...REQUEST, seed: 5 }).final()
    expect(result.text.length).toBeGreaterThan(0)
    expect(result.nodeId).toBe(replacementId)
    expect(retries).toHaveLength(1)
    expect(retries[0]).toMatchObject({ retry: 1, error: { code: 'no-capacity' } })
    expect(retries[0]?.delayMs).toBeGreaterThanOrEqual(375)
    expect(retries[0]?.delayMs).toBeLessThanOrEqual(500)
  })

  it('timeoutMs bounds the whole request and cancels it on the node', async () => {
    const client = await network.client()
    const cancelled = () => network.nodes.reduce((sum, node) => sum + node.stats.requestsCancelled, 0)
    const before = cancelled()
    const startedAt = Date.now()
    await expect(
      client
        .chat({
          ...REQUEST,
          messages: [{ role: 'user', content: 'Go on for a long time' }],
          maxTokens: 2000,
          // Greedy: lull-tiny then never ends early, so the answer outlasts the timeout on any machine.
          temperature: 0,
          timeoutMs: 300,
        })
        .final(),
    ).rejects.toMatchObject({ name: 'TimeoutError', code: 'timeout' })
    expect(Date.now() - startedAt).toBeLessThan(5_000)
    await until(() => cancelled() > before, 'the node to cancel the request', 20_000, 100)
  })
})

describe('a network with no node (yet)', () => {
  let network: TestNetwork

  beforeAll(async () => {
    network = await startTestNetwork({ nodes: 0 })
  })

  afterAll(async () => {
    await network?.stop()
  })

  it('is a retryable no-capacity, retried with backoff; a node that joins meanwhile answers the request', async () => {
    const retried: RetryInfo[] = []
    const client = await LullClient.connect({
      coordinator: network.address,
      maxRetries: 1,
      onRetry: (info) => retried.push(info),
    })
    try {
      // An empty network (as just after a coordinator restart) says nothing about the model name: not model-not-found.
      await expect(client.chat(REQUEST).final()).rejects.toMatchObject({ code: 'no-capacity', isRetryable: true })
      expect(retried).toMatchObject([{ retry: 1, error: { code: 'no-capacity' } }])

      // With retries to spare, the same client's next request rides out the node's start-up.
      const patient = client.chat({ ...REQUEST, maxRetries: 20 }).final()
      const node = await LullNode.start({
        coordinator: network.address,
        model: 'lull-tiny',
        dataDir: join(network.dataDir, 'late-node'),
        slots: 1,
        threads: 1,
        logger: createNodeLogger('silent'),
      })
      network.nodes.push(node)
      const result = await patient
      expect(result.text.length).toBeGreaterThan(0)
      expect(result.nodeId).toBe(node.nodeId)
    } finally {
      await client.close()
    }
  })
})
