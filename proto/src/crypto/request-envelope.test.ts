import { bytesToHex } from '@noble/hashes/utils.js'
import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { DecryptionError, MalformedMessageError, NotARecipientError } from '../errors.js'
import { generateX25519KeyPair } from './keys.js'
import { openRequest, type SealedRequest, sealRequest } from './request-envelope.js'

const utf8 = (text: string) => new TextEncoder().encode(text)
const nodes = ['node-a', 'node-b', 'node-c'].map((nodeId) => ({ nodeId, ...generateX25519KeyPair() }))
const recipients = nodes.map(({ nodeId, publicKey }) => ({ nodeId, publicKey }))
const header = utf8('model=lull-tiny;max=64;bucket=2048')
const body = utf8('{"messages":[{"role":"user","content":"CANARY-7f3a9 what is the capital of France?"}]}')
const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]]

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes)
  copy[bit >> 3]! ^= 1 << (bit & 7)
  return copy
}

describe('sealRequest / openRequest', () => {
  it('seals once and every candidate opens the same body and content key', async () => {
    const { sealed, contentKey } = await sealRequest(body, recipients, header)
    expect(contentKey).toHaveLength(32)
    expect(sealed.ciphertext).toHaveLength(12 + body.length + 16)
    expect(sealed.keys.map((k) => k.nodeId)).toEqual(['node-a', 'node-b', 'node-c'])
    for (const key of sealed.keys) {
      expect(key.enc).toHaveLength(32)
      expect(key.wrappedKey).toHaveLength(32 + 16)
    }
    for (const node of nodes) {
      const opened = await openRequest(sealed, node.nodeId, node.secretKey, header)
      expect(opened.body).toEqual(body)
      expect(opened.contentKey).toEqual(contentKey)
    }
  })

  it('uses a fresh content key and nonce for every request', async () => {
    const one = await sealRequest(body, recipients, header)
    const two = await sealRequest(body, recipients, header)
    expect(bytesToHex(one.contentKey)).not.toBe(bytesToHex(two.contentKey))
    expect(bytesToHex(one.sealed.ciphertext.subarray(0, 12))).not.toBe(
      bytesToHex(two.sealed.ciphertext.subarray(0, 12)),
    )
  })

  it('survives the msgpack wire (Buffers) and never carries the plaintext in the clear', async () => {
    const packr = new Packr({ useRecords: false })
    const { sealed } = await sealRequest(body, recipients, header)
    const wire = packr.pack(sealed)
    expect(Buffer.from(wire).includes('CANARY-7f3a9')).toBe(false)
    const decoded = packr.unpack(wire) as SealedRequest
    expect((await openRequest(decoded, 'node-b', b.secretKey, header)).body).toEqual(body)
  })

  it('handles an empty body', async () => {
    const { sealed } = await sealRequest(new Uint8Array(0), recipients, header)
    expect((await openRequest(sealed, 'node-a', a.secretKey, header)).body).toHaveLength(0)
  })

  it('refuses a node that is not a recipient', async () => {
    const { sealed } = await sealRequest(body, recipients.slice(0, 2), header)
    const outsider = generateX25519KeyPair()
    await expect(openRequest(sealed, 'node-c', outsider.secretKey, header)).rejects.toBeInstanceOf(NotARecipientError)
    await expect(openRequest({ ...sealed, keys: [] }, 'node-a', a.secretKey, header)).rejects.toBeInstanceOf(
      NotARecipientError,
    )
  })

  it('fails with DecryptionError when the header (aad) changes', async () => {
    const { sealed } = await sealRequest(body, recipients, header)
    for (let bit = 0; bit < header.length * 8; bit += 7) {
      await expect(openRequest(sealed, 'node-a', a.secretKey, flipBit(header, bit))).rejects.toBeInstanceOf(
        DecryptionError,
      )
    }
    await expect(openRequest(sealed, 'node-a', a.secretKey, new Uint8Array(0))).rejects.toBeInstanceOf(DecryptionError)
  })

  it('fails with DecryptionError on any tampering of the body or the wrapped key', async () => {
    const { sealed } = await sealRequest(body, recipients, header)
    const key = sealed.keys[0]!
    const tampered: SealedRequest[] = []
    for (let bit = 0; bit < sealed.ciphertext.length * 8; bit += 13) {
      tampered.push({ ...sealed, ciphertext: flipBit(sealed.ciphertext, bit) })
    }
    for (let bit = 0; bit < 32 * 8; bit += 11) {
      tampered.push({ ...sealed, keys: [{ ...key, enc: flipBit(key.enc, bit) }] })
    }
    for (let bit = 0; bit < 48 * 8; bit += 11) {
      tampered.push({ ...sealed, keys: [{ ...key, wrappedKey: flipBit(key.wrappedKey, bit) }] })
    }
    tampered.push({ ...sealed, ciphertext: sealed.ciphertext.subarray(0, -1) })
    tampered.push({ ...sealed, ciphertext: sealed.ciphertext.subarray(0, 27) })
    tampered.push({ ...sealed, ciphertext: new Uint8Array(0) })
    tampered.push({ ...sealed, keys: [{ ...key, enc: new Uint8Array(32) }] })
    tampered.push({ ...sealed, keys: [{ ...key, wrappedKey: key.wrappedKey.subarray(0, 47) }] })
    tampered.push({ ...sealed, keys: [{ ...key, enc: 'x' as unknown as Uint8Array }] })
    for (const request of tampered) {
      await expect(openRequest(request, 'node-a', a.secretKey, header)).rejects.toBeInstanceOf(DecryptionError)
    }
  })

  it('fails with DecryptionError for the wrong secret key or a wrap relabelled to another node', async () => {
    const { sealed } = await sealRequest(body, recipients, header)
    await expect(openRequest(sealed, 'node-a', b.secretKey, header)).rejects.toBeInstanceOf(DecryptionError)
    const relabelled = { ...sealed, keys: [{ ...sealed.keys[1]!, nodeId: 'node-a' }] }
    await expect(openRequest(relabelled, 'node-a', a.secretKey, header)).rejects.toBeInstanceOf(DecryptionError)
  })

  it('binds each wrapped key to its own body: moved onto another request it fails', async () => {
    const one = await sealRequest(body, recipients, header)
    const two = await sealRequest(utf8('another prompt'), recipients, header)
    const spliced = { ciphertext: two.sealed.ciphertext, keys: one.sealed.keys }
    await expect(openRequest(spliced, 'node-a', a.secretKey, header)).rejects.toBeInstanceOf(DecryptionError)
  })

  it('rejects a sealed request that is not shaped like one with MalformedMessageError', async () => {
    const { sealed } = await sealRequest(body, recipients, header)
    const shapes: unknown[] = [
      null,
      42,
      'sealed',
      { keys: sealed.keys },
      { ...sealed, keys: 'keys' },
      { ...sealed, ciphertext: [1, 2] },
    ]
    for (const shape of shapes) {
      await expect(openRequest(shape as SealedRequest, 'node-a', a.secretKey, header)).rejects.toBeInstanceOf(
        MalformedMessageError,
      )
    }
  })

  it('checks its arguments', async () => {
    await expect(sealRequest(body, [], header)).rejects.toThrow(/non-empty/)
    await expect(sealRequest(body, [recipients[0]!, recipients[0]!], header)).rejects.toThrow(/duplicate/)
    await expect(sealRequest(body, [{ nodeId: 'x', publicKey: new Uint8Array(31) }], header)).rejects.toThrow(
      /publicKey must be 32 bytes/,
    )
    await expect(sealRequest(body, [{ nodeId: '', publicKey: a.publicKey }], header)).rejects.toThrow(/nodeId/)
    await expect(sealRequest('body' as unknown as Uint8Array, recipients, header)).rejects.toThrow(/body/)
    await expect(sealRequest(body, recipients, undefined as unknown as Uint8Array)).rejects.toThrow(/aad/)
    const { sealed } = await sealRequest(body, recipients, header)
    await expect(openRequest(sealed, 'node-a', a.secretKey.subarray(1), header)).rejects.toThrow(/secretKey/)
  })
})

describe('openRequest on hostile object shapes', () => {
  it('turns a throwing getter into MalformedMessageError', async () => {
    const hostile = {
      get ciphertext(): Uint8Array {
        throw new TypeError('boom')
      },
      keys: [],
    }
    await expect(
      openRequest(hostile as never, 'node', generateX25519KeyPair().secretKey, new Uint8Array(1)),
    ).rejects.toBeInstanceOf(MalformedMessageError)
  })
})
