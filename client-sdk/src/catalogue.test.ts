import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type CatalogueMessage, generateX25519KeyPair, type NodeCertificate, signNodeCertificate } from '@lull/proto'
import { TEST_HARDWARE } from '@lull/proto/testing'
import { describe, expect, it } from 'vitest'
import { chooseCandidates, type NodeInfo, verifiedModels } from './catalogue.js'

const NOW_MS = Date.now()

async function certify(overrides: { modelId?: string; notBeforeMs?: number; notAfterMs?: number } = {}) {
  const identity = await generateKeyPair('Ed25519')
  const nodeId = peerIdFromPrivateKey(identity).toString()
  const certificate = await signNodeCertificate(
    {
      nodeId,
      hpkePublicKey: generateX25519KeyPair().publicKey,
      modelId: overrides.modelId ?? 'lull-tiny',
      modelDigest: 'b'.repeat(64),
      hardware: TEST_HARDWARE,
      notBeforeMs: overrides.notBeforeMs ?? NOW_MS - 1_000,
      notAfterMs: overrides.notAfterMs ?? NOW_MS + 60_000,
    },
    identity,
  )
  return { nodeId, certificate }
}

function catalogueOf(
  entries: Array<{ nodeId: string; certificate: NodeCertificate }>,
  modelId = 'lull-tiny',
): CatalogueMessage {
  return {
    type: 'catalogue',
    models: [
      {
        modelId,
        nodes: entries.map(({ nodeId, certificate }) => ({
          nodeId,
          certificate,
          slots: 2,
          busySlots: 0,
          benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 1 },
        })),
      },
    ],
  }
}

async function listed(
  entries: Array<{ nodeId: string; certificate: NodeCertificate }>,
  modelId?: string,
): Promise<string[]> {
  const models = await verifiedModels(catalogueOf(entries, modelId), NOW_MS)
  return models.flatMap((model) => model.nodes.map((node) => node.nodeId))
}

describe('verifiedModels: the client refuses certificates it cannot trust', () => {
  it('keeps a valid certificate', async () => {
    const good = await certify()
    expect(await listed([good])).toEqual([good.nodeId])
  })

  it('refuses an expired certificate', async () => {
    expect(await listed([await certify({ notBeforeMs: NOW_MS - 120_000, notAfterMs: NOW_MS - 60_000 })])).toEqual([])
  })

  it('refuses a future-dated certificate', async () => {
    expect(await listed([await certify({ notBeforeMs: NOW_MS + 60_000, notAfterMs: NOW_MS + 120_000 })])).toEqual([])
  })

  it('refuses a certificate for another model than the one it is listed under', async () => {
    expect(await listed([await certify({ modelId: 'other-model' })], 'lull-tiny')).toEqual([])
  })

  it('refuses a certificate whose key a coordinator swapped for its own', async () => {
    const good = await certify()
    const swapped = { ...good.certificate, hpkePublicKey: generateX25519KeyPair().publicKey }
    expect(await listed([{ nodeId: good.nodeId, certificate: swapped }])).toEqual([])
  })

  it('refuses a certificate signed by another identity, or listed under another node id', async () => {
    const a = await certify()
    const b = await certify()
    expect(await listed([{ nodeId: a.nodeId, certificate: { ...b.certificate, nodeId: a.nodeId } }])).toEqual([])
    expect(await listed([{ nodeId: b.nodeId, certificate: a.certificate }])).toEqual([])
  })
})

describe('chooseCandidates', () => {
  const node = (nodeId: string, busySlots: number) => ({ nodeId, slots: 2, busySlots }) as NodeInfo

  it('prefers nodes with free slots and returns at most the requested count', () => {
    const chosen = chooseCandidates([node('busy', 2), node('a', 0), node('b', 1)], 2)
    expect(chosen.map((candidate) => candidate.nodeId).sort()).toEqual(['a', 'b'])
  })
})
