import { LullClient, ModelNotFoundError } from '@lull/client-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

let network: TestNetwork

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 2, slots: 2 })
})

afterAll(async () => {
  await network?.stop()
})

const ask = (client: LullClient, content: string) =>
  client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content }], maxTokens: 8 }).final()

describe('node key rotation', () => {
  it('announces the new key to the catalogue and still opens requests sealed to the old one', async () => {
    const node = network.nodes[0]!
    // A client that fetched the catalogue before the rotation and keeps using it.
    const stale = await LullClient.connect({
      coordinator: network.address,
      trustedNodes: [node.nodeId],
      catalogueMaxAgeMs: 60_000,
    })
    try {
      const oldKey = (await stale.models())[0]?.nodes.find((entry) => entry.nodeId === node.nodeId)?.certificate
        .hpkePublicKey
      expect(oldKey).toBeDefined()

      const rotated = await node.rotateKey()
      expect(Buffer.from(rotated.hpkePublicKey).equals(Buffer.from(oldKey!))).toBe(false)

      // Sealed to the old key: the overlap lets it through.
      expect((await ask(stale, 'Sealed to the key before rotation')).text.length).toBeGreaterThan(0)
    } finally {
      await stale.close()
    }

    // New clients are offered the new key.
    const fresh = await network.client()
    const deadline = Date.now() + 5_000
    let listed: Uint8Array | undefined
    do {
      listed = (await fresh.models())[0]?.nodes.find((entry) => entry.nodeId === node.nodeId)?.certificate.hpkePublicKey
    } while (
      listed !== undefined &&
      !Buffer.from(listed).equals(Buffer.from(node.certificate.hpkePublicKey)) &&
      Date.now() < deadline
    )
    expect(listed && Buffer.from(listed).equals(Buffer.from(node.certificate.hpkePublicKey))).toBe(true)
    expect((await ask(fresh, 'Sealed to the new key')).text.length).toBeGreaterThan(0)
  })
})

describe('trusted node pinning', () => {
  it('seals only for the pinned node', async () => {
    const pinnedNode = network.nodes[1]!
    const client = await LullClient.connect({ coordinator: network.address, trustedNodes: [pinnedNode.nodeId] })
    try {
      const answers = await Promise.all([0, 1, 2, 3].map((index) => ask(client, `Pinned question ${index}`)))
      expect(new Set(answers.map((answer) => answer.nodeId))).toEqual(new Set([pinnedNode.nodeId]))
    } finally {
      await client.close()
    }
  })

  it('refuses every other node when no pinned node serves the model', async () => {
    const client = await LullClient.connect({
      coordinator: network.address,
      trustedNodes: ['12D3KooWNotARealNodeAtAll'],
    })
    try {
      const error = await ask(client, 'Anyone?').catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(ModelNotFoundError)
      expect((error as Error).message).toContain('trusted')
    } finally {
      await client.close()
    }
  })
})
