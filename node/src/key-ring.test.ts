import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { DecryptionError, NotARecipientError, sealRequest, verifyNodeCertificate } from '@lull/proto'
import { TEST_HARDWARE } from '@lull/proto/testing'
import { describe, expect, it } from 'vitest'
import { KeyRing } from './key-ring.js'

const HOUR_MS = 60 * 60 * 1000
const aad = new Uint8Array([1, 2, 3])

async function ring(clock: { now: number }) {
  const identity = await generateKeyPair('Ed25519')
  const nodeId = peerIdFromPrivateKey(identity).toString()
  const keys = await KeyRing.create({
    identity,
    nodeId,
    modelId: 'lull-tiny',
    modelDigest: 'a'.repeat(64),
    hardware: TEST_HARDWARE,
    rotationIntervalMs: 24 * HOUR_MS,
    overlapMs: HOUR_MS,
    now: () => clock.now,
  })
  const sealTo = (certificate = keys.certificate) =>
    sealRequest(new TextEncoder().encode('body'), [{ nodeId, publicKey: certificate.hpkePublicKey }], aad)
  return { keys, nodeId, sealTo }
}

describe('KeyRing', () => {
  it('certifies each key with the identity key for the rotation interval plus the overlap', async () => {
    const clock = { now: Date.now() }
    const { keys, nodeId } = await ring(clock)
    const certificate = keys.certificate
    expect(certificate.notAfterMs - clock.now).toBe(25 * HOUR_MS)
    expect(await verifyNodeCertificate(certificate, { nowMs: clock.now, nodeId, modelId: 'lull-tiny' })).toBe(true)
    expect(await verifyNodeCertificate(certificate, { nowMs: clock.now + 25 * HOUR_MS, nodeId })).toBe(false)
  })

  it('opens requests sealed to the previous key during the overlap, and not after', async () => {
    const clock = { now: Date.now() }
    const { keys, sealTo } = await ring(clock)
    const old = keys.certificate
    const { sealed: sealedToOld } = await sealTo(old)

    clock.now += 24 * HOUR_MS
    const current = await keys.rotate()
    expect(current.hpkePublicKey).not.toEqual(old.hpkePublicKey)
    expect(keys.heldKeys).toBe(2)
    expect(new TextDecoder().decode((await keys.open(sealedToOld, aad)).body)).toBe('body')
    const { sealed: sealedToNew } = await sealTo()
    expect(new TextDecoder().decode((await keys.open(sealedToNew, aad)).body)).toBe('body')

    // The old certificate expires an hour after the rotation; the key is forgotten once clock skew is allowed for.
    clock.now += HOUR_MS + 6 * 60 * 1000
    expect(keys.heldKeys).toBe(1)
    await expect(keys.open(sealedToOld, aad)).rejects.toBeInstanceOf(DecryptionError)
    expect(new TextDecoder().decode((await keys.open(sealedToNew, aad)).body)).toBe('body')
  })

  it('keeps the current key even when the node slept past its expiry', async () => {
    const clock = { now: Date.now() }
    const { keys, sealTo } = await ring(clock)
    const { sealed } = await sealTo()
    clock.now += 100 * HOUR_MS
    expect(keys.heldKeys).toBe(1)
    await expect(keys.open(sealed, aad)).resolves.toBeDefined()
  })

  it('says when a request was not sealed for this node at all', async () => {
    const clock = { now: Date.now() }
    const first = await ring(clock)
    const second = await ring(clock)
    const { sealed } = await second.sealTo()
    await expect(first.keys.open(sealed, aad)).rejects.toBeInstanceOf(NotARecipientError)
  })
})
