import { readFileSync } from 'node:fs'
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { describe, expect, it } from 'vitest'
import { DecryptionError } from '../errors.js'
import { hpkeDeriveKeyPair, hpkeOpen, hpkeSeal, hpkeSetupRecipient, hpkeSetupSender } from './hpke.js'
import { generateX25519KeyPair } from './keys.js'

interface Rfc9180Vector {
  mode: number
  kem_id: number
  kdf_id: number
  aead_id: number
  info: string
  ikmE: string
  pkEm: string
  skEm: string
  ikmR: string
  pkRm: string
  skRm: string
  enc: string
  key: string
  base_nonce: string
  encryptions: { sequence_number: number; pt: string; aad: string; nonce: string; ct: string }[]
  exports: { exporter_context: string; L: number; exported_value: string }[]
}

const vector = JSON.parse(
  readFileSync(new URL('../../test-data/rfc9180-a2-base.json', import.meta.url), 'utf8'),
) as Rfc9180Vector
const utf8 = (text: string) => new TextEncoder().encode(text)

describe('HPKE against RFC 9180 A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base)', () => {
  it('is the suite this module implements', () => {
    expect([vector.mode, vector.kem_id, vector.kdf_id, vector.aead_id]).toEqual([0, 0x20, 1, 3])
    expect(vector.encryptions.map((e) => e.sequence_number)).toEqual([0, 1, 2, 4, 255, 256])
    expect(vector.exports).toHaveLength(3)
  })

  it('derives the key pairs from ikmE and ikmR', async () => {
    const ephemeral = await hpkeDeriveKeyPair(hexToBytes(vector.ikmE))
    expect(bytesToHex(ephemeral.publicKey)).toBe(vector.pkEm)
    expect(bytesToHex(ephemeral.secretKey)).toBe(vector.skEm)
    const recipient = await hpkeDeriveKeyPair(hexToBytes(vector.ikmR))
    expect(bytesToHex(recipient.publicKey)).toBe(vector.pkRm)
    expect(bytesToHex(recipient.secretKey)).toBe(vector.skRm)
  })

  it('seals the six encryptions through one sender context and opens them on the receiver', async () => {
    const info = hexToBytes(vector.info)
    const sender = await hpkeSetupSender(hexToBytes(vector.pkRm), info, { ikmE: hexToBytes(vector.ikmE) })
    expect(bytesToHex(sender.enc)).toBe(vector.enc)
    const receiver = await hpkeSetupRecipient(hexToBytes(vector.skRm), sender.enc, info)
    const bySequence = new Map(vector.encryptions.map((e) => [e.sequence_number, e]))
    const plaintext = hexToBytes(vector.encryptions[0]!.pt)
    let checked = 0
    for (let sequence = 0; sequence <= 256; sequence++) {
      const expected = bySequence.get(sequence)
      const aad = expected ? hexToBytes(expected.aad) : utf8(`Count-${sequence}`)
      const ciphertext = await sender.seal(plaintext, aad)
      if (expected) {
        expect(bytesToHex(ciphertext), `ciphertext at sequence ${sequence}`).toBe(expected.ct)
        expect(bytesToHex(plaintext)).toBe(expected.pt)
        checked++
      }
      expect(bytesToHex(await receiver.open(ciphertext, aad)), `open at sequence ${sequence}`).toBe(
        bytesToHex(plaintext),
      )
    }
    expect(checked).toBe(6)
  })

  it('hpkeOpen opens the published sequence-0 ciphertext', async () => {
    const first = vector.encryptions[0]!
    const opened = await hpkeOpen(hexToBytes(vector.skRm), hexToBytes(vector.enc), hexToBytes(first.ct), {
      info: hexToBytes(vector.info),
      aad: hexToBytes(first.aad),
    })
    expect(bytesToHex(opened)).toBe(first.pt)
  })

  it('matches the three exported values on both sides', async () => {
    const info = hexToBytes(vector.info)
    const sender = await hpkeSetupSender(hexToBytes(vector.pkRm), info, { ikmE: hexToBytes(vector.ikmE) })
    const receiver = await hpkeSetupRecipient(hexToBytes(vector.skRm), hexToBytes(vector.enc), info)
    for (const { exporter_context, L, exported_value } of vector.exports) {
      expect(bytesToHex(await sender.export(hexToBytes(exporter_context), L))).toBe(exported_value)
      expect(bytesToHex(await receiver.export(hexToBytes(exporter_context), L))).toBe(exported_value)
    }
  })

  it('has self-consistent key schedule values (checked with @noble/ciphers, independently of @hpke/core)', () => {
    const key = hexToBytes(vector.key)
    const baseNonce = hexToBytes(vector.base_nonce)
    for (const e of vector.encryptions) {
      const nonce = Uint8Array.from(baseNonce)
      nonce[10]! ^= (e.sequence_number >> 8) & 0xff
      nonce[11]! ^= e.sequence_number & 0xff
      expect(bytesToHex(nonce)).toBe(e.nonce)
      const ct = chacha20poly1305(key, nonce, hexToBytes(e.aad)).encrypt(hexToBytes(e.pt))
      expect(bytesToHex(ct)).toBe(e.ct)
    }
  })
})

describe('hpkeSeal / hpkeOpen', () => {
  const info = utf8('test info')
  const aad = utf8('test aad')

  it('round-trips, with a fresh encapsulated key every time', async () => {
    const { secretKey, publicKey } = generateX25519KeyPair()
    const plaintext = utf8('hello, node')
    const a = await hpkeSeal(publicKey, plaintext, { info, aad })
    const b = await hpkeSeal(publicKey, plaintext, { info, aad })
    expect(a.enc).toHaveLength(32)
    expect(a.ciphertext).toHaveLength(plaintext.length + 16)
    expect(bytesToHex(a.enc)).not.toBe(bytesToHex(b.enc))
    expect(bytesToHex(a.ciphertext)).not.toBe(bytesToHex(b.ciphertext))
    expect(await hpkeOpen(secretKey, a.enc, a.ciphertext, { info, aad })).toEqual(plaintext)
    expect(await hpkeOpen(secretKey, b.enc, b.ciphertext, { info, aad })).toEqual(plaintext)
  })

  it('round-trips empty plaintext and inputs that are views into larger buffers (Node Buffers)', async () => {
    const { secretKey, publicKey } = generateX25519KeyPair()
    const sealed = await hpkeSeal(publicKey, new Uint8Array(0), { info, aad })
    const pool = Buffer.alloc(200, 7)
    const enc = pool.subarray(10, 42)
    enc.set(sealed.enc)
    const ciphertext = pool.subarray(50, 50 + sealed.ciphertext.length)
    ciphertext.set(sealed.ciphertext)
    expect(await hpkeOpen(secretKey, enc, ciphertext, { info, aad })).toHaveLength(0)
  })

  it('rejects every single-bit flip in enc and ciphertext with DecryptionError', async () => {
    const { secretKey, publicKey } = generateX25519KeyPair()
    const sealed = await hpkeSeal(publicKey, utf8('tamper me'), { info, aad })
    for (const field of ['enc', 'ciphertext'] as const) {
      for (let bit = 0; bit < sealed[field].length * 8; bit += 3) {
        const tampered = { ...sealed, [field]: Uint8Array.from(sealed[field]) }
        tampered[field][bit >> 3]! ^= 1 << (bit & 7)
        await expect(hpkeOpen(secretKey, tampered.enc, tampered.ciphertext, { info, aad })).rejects.toBeInstanceOf(
          DecryptionError,
        )
      }
    }
  })

  it('rejects a wrong key, wrong info, wrong aad, truncation and malformed enc with DecryptionError', async () => {
    const { secretKey, publicKey } = generateX25519KeyPair()
    const other = generateX25519KeyPair()
    const { enc, ciphertext } = await hpkeSeal(publicKey, utf8('secret'), { info, aad })
    const cases: [string, () => Promise<Uint8Array>][] = [
      ['wrong key', () => hpkeOpen(other.secretKey, enc, ciphertext, { info, aad })],
      ['wrong info', () => hpkeOpen(secretKey, enc, ciphertext, { info: utf8('other'), aad })],
      ['wrong aad', () => hpkeOpen(secretKey, enc, ciphertext, { info, aad: utf8('other') })],
      ['empty aad', () => hpkeOpen(secretKey, enc, ciphertext, { info, aad: new Uint8Array(0) })],
      ['truncated', () => hpkeOpen(secretKey, enc, ciphertext.subarray(0, -1), { info, aad })],
      ['too short', () => hpkeOpen(secretKey, enc, ciphertext.subarray(0, 15), { info, aad })],
      ['empty ciphertext', () => hpkeOpen(secretKey, enc, new Uint8Array(0), { info, aad })],
      ['extended', () => hpkeOpen(secretKey, enc, Uint8Array.from([...ciphertext, 0]), { info, aad })],
      ['short enc', () => hpkeOpen(secretKey, enc.subarray(1), ciphertext, { info, aad })],
      ['long enc', () => hpkeOpen(secretKey, Uint8Array.from([...enc, 0]), ciphertext, { info, aad })],
      ['all-zero enc (low order)', () => hpkeOpen(secretKey, new Uint8Array(32), ciphertext, { info, aad })],
      ['enc not bytes', () => hpkeOpen(secretKey, 'x' as unknown as Uint8Array, ciphertext, { info, aad })],
      ['ciphertext not bytes', () => hpkeOpen(secretKey, enc, null as unknown as Uint8Array, { info, aad })],
    ]
    for (const [label, attempt] of cases) {
      await expect(attempt(), label).rejects.toBeInstanceOf(DecryptionError)
    }
  })

  it('throws labelled argument errors for caller mistakes', async () => {
    const { secretKey, publicKey } = generateX25519KeyPair()
    await expect(hpkeSeal(publicKey.subarray(1), utf8('x'), { info, aad })).rejects.toThrow(/recipientPublicKey/)
    await expect(hpkeSeal(new Uint8Array(32), utf8('x'), { info, aad })).rejects.toThrow(RangeError)
    await expect(hpkeSeal(publicKey, 'x' as unknown as Uint8Array, { info, aad })).rejects.toThrow(/plaintext/)
    await expect(hpkeSeal(publicKey, utf8('x'), { info: 'i' as unknown as Uint8Array, aad })).rejects.toThrow(/info/)
    const { enc, ciphertext } = await hpkeSeal(publicKey, utf8('x'), { info, aad })
    await expect(hpkeOpen(secretKey.subarray(1), enc, ciphertext, { info, aad })).rejects.toThrow(/recipientSecretKey/)
  })

  it('re-imports a secret key array whose contents changed (imported keys are cached per array)', async () => {
    const one = generateX25519KeyPair()
    const two = generateX25519KeyPair()
    const toOne = await hpkeSeal(one.publicKey, utf8('for one'), { info, aad })
    const toTwo = await hpkeSeal(two.publicKey, utf8('for two'), { info, aad })
    const secretKey = Uint8Array.from(one.secretKey)
    expect(await hpkeOpen(secretKey, toOne.enc, toOne.ciphertext, { info, aad })).toEqual(utf8('for one'))
    secretKey.set(two.secretKey)
    await expect(hpkeOpen(secretKey, toOne.enc, toOne.ciphertext, { info, aad })).rejects.toBeInstanceOf(
      DecryptionError,
    )
    expect(await hpkeOpen(secretKey, toTwo.enc, toTwo.ciphertext, { info, aad })).toEqual(utf8('for two'))
  })

  it('opens a context in sealing order only', async () => {
    const { secretKey, publicKey } = generateX25519KeyPair()
    const sender = await hpkeSetupSender(publicKey, info)
    const first = await sender.seal(utf8('one'), aad)
    const second = await sender.seal(utf8('two'), aad)
    const receiver = await hpkeSetupRecipient(secretKey, sender.enc, info)
    await expect(receiver.open(second, aad)).rejects.toBeInstanceOf(DecryptionError)
    expect(await receiver.open(first, aad)).toEqual(utf8('one'))
    expect(await receiver.open(second, aad)).toEqual(utf8('two'))
  })
})
