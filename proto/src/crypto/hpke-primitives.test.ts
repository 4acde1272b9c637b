import { x25519 } from '@noble/curves/ed25519.js'
import { describe, expect, it } from 'vitest'
import { NodeHkdfSha256, nodeX25519 } from './hpke-primitives.js'

const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'))

describe('node:crypto primitives for HPKE', () => {
  it('X25519 agrees with noble-curves on public keys and shared secrets, for fresh and imported keys', async () => {
    for (let round = 0; round < 20; round++) {
      const fresh = await nodeX25519.utils.randomSecretKey()
      const imported = x25519.utils.randomSecretKey()
      const peer = x25519.keygen()
      for (const secretKey of [fresh, imported]) {
        expect(nodeX25519.getPublicKey(secretKey)).toEqual(x25519.getPublicKey(secretKey))
        expect(nodeX25519.getSharedSecret(secretKey, peer.publicKey)).toEqual(
          x25519.getSharedSecret(secretKey, peer.publicKey),
        )
      }
    }
  })

  it('X25519 passes RFC 7748 §6.1 (Alice and Bob)', () => {
    const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a')
    const bobPublic = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f')
    expect(Buffer.from(nodeX25519.getPublicKey(alice)).toString('hex')).toBe(
      '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    )
    expect(Buffer.from(nodeX25519.getSharedSecret(alice, bobPublic)).toString('hex')).toBe(
      '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
    )
  })

  it('X25519 refuses a low-order public key (all-zero shared secret) and keys of the wrong length', () => {
    const secretKey = x25519.utils.randomSecretKey()
    expect(() => nodeX25519.getSharedSecret(secretKey, new Uint8Array(32))).toThrow()
    expect(() => nodeX25519.getSharedSecret(secretKey, new Uint8Array(31))).toThrow(RangeError)
    expect(() => nodeX25519.getPublicKey(new Uint8Array(16))).toThrow(RangeError)
  })

  it('HKDF-SHA256 passes RFC 5869 test case 1, through extract/expand and in one step', async () => {
    const hkdf = new NodeHkdfSha256()
    const ikm = hex('0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b')
    const salt = hex('000102030405060708090a0b0c')
    const info = hex('f0f1f2f3f4f5f6f7f8f9')
    const okm = '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865'
    // @hpke/core's extract takes only a hash-length (or empty) salt, so the two-step path is checked with a
    // zero salt against node's own HKDF; the one-step path against the RFC.
    expect(Buffer.from(await hkdf.extractAndExpand(salt, ikm, info, 42)).toString('hex')).toBe(okm)
    const zeroSalt = new Uint8Array(32)
    const prk = await hkdf.extract(new Uint8Array(0), ikm)
    expect(await hkdf.extract(zeroSalt, ikm)).toEqual(prk)
    const twoStep = Buffer.from(await hkdf.expand(prk, info, 42)).toString('hex')
    const oneStep = Buffer.from(await hkdf.extractAndExpand(zeroSalt, ikm, info, 42)).toString('hex')
    expect(twoStep).toBe(oneStep)
    await expect(hkdf.extract(new Uint8Array(5), ikm)).rejects.toThrow()
  })
})
