import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateX25519KeyPair, type RegisterMessage, signNodeCertificate } from '@lull/proto'
import { TEST_HARDWARE } from '@lull/proto/testing'
import { describe, expect, it } from 'vitest'
import { Accounts } from './accounts/admission.js'
import { admitNode, checkRenewedCertificate } from './node-admission.js'
import type { NodeChannel, NodeEntry } from './registry.js'

const NOW_MS = Date.now()

async function certify(identity: PrivateKey, overrides: { modelId?: string; modelDigest?: string } = {}) {
  return signNodeCertificate(
    {
      nodeId: peerIdFromPrivateKey(identity).toString(),
      hpkePublicKey: generateX25519KeyPair().publicKey,
      modelId: overrides.modelId ?? 'lull-tiny',
      modelDigest: overrides.modelDigest ?? 'b'.repeat(64),
      hardware: TEST_HARDWARE,
      notBeforeMs: NOW_MS - 1_000,
      notAfterMs: NOW_MS + 60_000,
    },
    identity,
  )
}

const openAccounts = new Accounts(undefined, true)
const channel = {} as NodeChannel

function registerMessage(certificate: RegisterMessage['certificate']): RegisterMessage {
  return {
    type: 'register',
    certificate,
    slots: 2,
    benchmark: { prefillTokensPerSecond: 1_000, decodeTokensPerSecond: 100 },
  } as RegisterMessage
}

async function registered(identity: PrivateKey): Promise<NodeEntry> {
  const message = registerMessage(await certify(identity))
  const entry = await admitNode(openAccounts, channel, peerIdFromPrivateKey(identity).toString(), message, NOW_MS)
  if (!('nodeId' in entry)) throw entry
  return entry
}

describe('node admission', () => {
  it('admits a node whose certificate it signed itself, serving, with its slots and model', async () => {
    const identity = await generateKeyPair('Ed25519')
    const entry = await registered(identity)
    expect(entry).toMatchObject({ modelId: 'lull-tiny', slots: 2, inFlight: 0, state: 'serving', lastSeenMs: NOW_MS })
  })

  it("refuses a certificate signed by another peer's key", async () => {
    const [identity, impostor] = [await generateKeyPair('Ed25519'), await generateKeyPair('Ed25519')]
    const message = registerMessage(await certify(impostor))
    const refused = await admitNode(openAccounts, channel, peerIdFromPrivateKey(identity).toString(), message)
    expect(refused).toMatchObject({ code: 'invalid-certificate' })
  })

  it('takes a rotated certificate only for the same node, model and digest', async () => {
    const identity = await generateKeyPair('Ed25519')
    const entry = await registered(identity)
    expect(await checkRenewedCertificate(entry, await certify(identity), NOW_MS)).toBeUndefined()
    for (const other of [
      await certify(identity, { modelId: 'other-model' }),
      await certify(identity, { modelDigest: 'c'.repeat(64) }),
      await certify(await generateKeyPair('Ed25519')),
    ]) {
      expect(await checkRenewedCertificate(entry, other, NOW_MS)).toMatchObject({ code: 'invalid-certificate' })
    }
  })
})
