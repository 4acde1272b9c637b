import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { signUsage, usageSigningBytes, verifyUsageSignature } from './usage-signature.js'

describe('usage signatures', () => {
  it('verify for the signing node and its exact counts only', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const nodeId = peerIdFromPrivateKey(key).toString()
    const fields = { requestId: 'req_abcdefgh', modelId: 'lull-tiny', promptTokens: 12, outputTokens: 40 }
    const signature = await signUsage(fields, key)
    expect(signature).toHaveLength(64)
    expect(await verifyUsageSignature(fields, signature, nodeId)).toBe(true)
    expect(await verifyUsageSignature({ ...fields, outputTokens: 41 }, signature, nodeId)).toBe(false)
    expect(await verifyUsageSignature({ ...fields, promptTokens: 11 }, signature, nodeId)).toBe(false)
    expect(await verifyUsageSignature({ ...fields, requestId: 'req_abcdefgi' }, signature, nodeId)).toBe(false)
    expect(await verifyUsageSignature({ ...fields, modelId: 'other' }, signature, nodeId)).toBe(false)
    expect(await verifyUsageSignature(fields, signature, peerIdFromPrivateKey(other).toString())).toBe(false)
    expect(await verifyUsageSignature(fields, signature.subarray(1), nodeId)).toBe(false)
    expect(await verifyUsageSignature(fields, signature, 'not a peer id')).toBe(false)
  })

  it("is plain Ed25519 over the signing bytes: libp2p's own key objects verify ours and sign what we verify", async () => {
    const key = await generateKeyPair('Ed25519')
    const nodeId = peerIdFromPrivateKey(key).toString()
    const fields = { requestId: 'req_12345678', modelId: 'lull-tiny', promptTokens: 3, outputTokens: 9 }
    const ours = await signUsage(fields, key)
    expect(await key.publicKey.verify(usageSigningBytes(fields), ours)).toBe(true)
    const theirs = await key.sign(usageSigningBytes(fields))
    expect(await verifyUsageSignature(fields, theirs, nodeId)).toBe(true)
    // A second signature and verification reuse the kept key objects and agree.
    expect(await signUsage(fields, key)).toEqual(ours)
    expect(await verifyUsageSignature({ ...fields, outputTokens: 10 }, ours, nodeId)).toBe(false)
  })

  it('encodes counts the same whatever their size', () => {
    const small = usageSigningBytes({ requestId: 'r', modelId: 'm', promptTokens: 1, outputTokens: 2 })
    const large = usageSigningBytes({ requestId: 'r', modelId: 'm', promptTokens: 100_000, outputTokens: 2 })
    expect(small.length).toBe(large.length)
    expect(() => usageSigningBytes({ requestId: 'r', modelId: 'm', promptTokens: -1, outputTokens: 0 })).toThrow()
  })
})
