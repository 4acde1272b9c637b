import { readFileSync } from 'node:fs'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { describe, expect, it } from 'vitest'
import { hpkeOpen, hpkeSeal } from './hpke.js'
import { generateX25519KeyPair, x25519PublicKey } from './keys.js'

const vector = JSON.parse(readFileSync(new URL('../../test-data/rfc9180-a2-base.json', import.meta.url), 'utf8')) as {
  skRm: string
  pkRm: string
  skEm: string
  pkEm: string
}

describe('X25519 keys', () => {
  it('generates distinct 32-byte key pairs whose public key matches the secret key', () => {
    const a = generateX25519KeyPair()
    const b = generateX25519KeyPair()
    expect(a.secretKey).toHaveLength(32)
    expect(a.publicKey).toHaveLength(32)
    expect(bytesToHex(a.secretKey)).not.toBe(bytesToHex(b.secretKey))
    expect(x25519PublicKey(a.secretKey)).toEqual(a.publicKey)
  })

  it('derives the RFC 9180 public keys from their secret keys', () => {
    expect(bytesToHex(x25519PublicKey(hexToBytes(vector.skRm)))).toBe(vector.pkRm)
    expect(bytesToHex(x25519PublicKey(hexToBytes(vector.skEm)))).toBe(vector.pkEm)
  })

  it('makes keys that HPKE accepts', async () => {
    const { secretKey, publicKey } = generateX25519KeyPair()
    const options = { info: new Uint8Array(0), aad: new Uint8Array(0) }
    const { enc, ciphertext } = await hpkeSeal(publicKey, Uint8Array.of(1, 2, 3), options)
    expect(await hpkeOpen(secretKey, enc, ciphertext, options)).toEqual(Uint8Array.of(1, 2, 3))
  })

  it('rejects secret keys that are not 32 bytes', () => {
    expect(() => x25519PublicKey(new Uint8Array(31))).toThrow(/secretKey must be 32 bytes/)
    expect(() => x25519PublicKey('k' as unknown as Uint8Array)).toThrow(TypeError)
  })
})
