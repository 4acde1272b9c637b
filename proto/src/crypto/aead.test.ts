import { randomBytes as nodeRandomBytes } from 'node:crypto'
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { describe, expect, it } from 'vitest'
import { aeadOpen, aeadSeal, hkdfSha256, randomBytes, sha256 } from './aead.js'

describe('ChaCha20-Poly1305, SHA-256 and HKDF from node:crypto', () => {
  it('matches the RFC 8439 §2.8.2 AEAD test vector', () => {
    const key = Uint8Array.from({ length: 32 }, (_, index) => 0x80 + index)
    const nonce = hexToBytes('070000004041424344454647')
    const aad = hexToBytes('50515253c0c1c2c3c4c5c6c7')
    const plaintext = new TextEncoder().encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    )
    const sealed = aeadSeal(key, nonce, plaintext, aad)
    expect(bytesToHex(sealed)).toBe(
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6' +
        '3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36' +
        '92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
        '3ff4def08e4b7a9de576d26586cec64b6116' +
        '1ae10b594f09e26a7e902ecbd0600691',
    )
    expect(aeadOpen(key, nonce, sealed, aad)).toEqual(plaintext)
  })

  it('seals exactly what @noble/ciphers seals, with and without aad, and each opens the other', () => {
    for (const length of [0, 1, 63, 64, 1_000, 16_384]) {
      const key = nodeRandomBytes(32)
      const nonce = nodeRandomBytes(12)
      const plaintext = new Uint8Array(nodeRandomBytes(length))
      const aad = length % 2 === 0 ? new Uint8Array(nodeRandomBytes(20)) : undefined
      const ours = aeadSeal(key, nonce, plaintext, aad)
      const theirs = chacha20poly1305(key, nonce, aad).encrypt(plaintext)
      expect(bytesToHex(ours)).toBe(bytesToHex(theirs))
      expect(aeadOpen(key, nonce, theirs, aad)).toEqual(plaintext)
    }
  })

  it('refuses a changed byte, a wrong aad, a wrong nonce and data shorter than the tag', () => {
    const key = randomBytes(32)
    const nonce = randomBytes(12)
    const aad = randomBytes(8)
    const sealed = aeadSeal(key, nonce, new TextEncoder().encode('hello'), aad)
    const flipped = Uint8Array.from(sealed)
    flipped[2]! ^= 1
    expect(() => aeadOpen(key, nonce, flipped, aad)).toThrow()
    expect(() => aeadOpen(key, nonce, sealed, randomBytes(8))).toThrow()
    expect(() => aeadOpen(key, randomBytes(12), sealed, aad)).toThrow()
    expect(() => aeadOpen(key, nonce, sealed)).toThrow()
    expect(() => aeadOpen(key, nonce, sealed.subarray(0, 15), aad)).toThrow(/shorter than its tag/)
  })

  it('hashes and derives keys as @noble/hashes does', () => {
    const data = new Uint8Array(nodeRandomBytes(3_000))
    expect(bytesToHex(sha256(data))).toBe(bytesToHex(nobleSha256(data)))
    const ikm = randomBytes(32)
    const salt = randomBytes(32)
    const info = new TextEncoder().encode('lull response v1')
    expect(bytesToHex(hkdfSha256(ikm, salt, info, 44))).toBe(bytesToHex(hkdf(nobleSha256, ikm, salt, info, 44)))
    expect(randomBytes(16)).toHaveLength(16)
  })
})
