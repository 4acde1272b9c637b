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

  it('encodes counts the same whatever their size', () => {
    const small = usageSigningBytes({ requestId: 'r', modelId: 'm', promptTokens: 1, outputTokens: 2 })
    const large = usageSigningBytes({ requestId: 'r', modelId: 'm', promptTokens: 100_000, outputTokens: 2 })
    expect(small.length).toBe(large.length)
    expect(() => usageSigningBytes({ requestId: 'r', modelId: 'm', promptTokens: -1, outputTokens: 0 })).toThrow()
  })
})
