import { randomBytes } from '@noble/hashes/utils.js'
import { describe, expect, it } from 'vitest'
import { DecryptionError, StreamTruncatedError } from '../errors.js'
import { RESPONSE_CHUNK_OVERHEAD, RESPONSE_SALT_BYTES, ResponseOpener, ResponseSealer } from './response-stream.js'

const utf8 = (text: string) => new TextEncoder().encode(text)
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

function sealStream(contentKey: Uint8Array, parts: string[]): Uint8Array[] {
  const sealer = new ResponseSealer(contentKey)
  return parts.map((part, i) => sealer.seal(utf8(part), i === parts.length - 1))
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes)
  copy[bit >> 3]! ^= 1 << (bit & 7)
  return copy
}

describe('ResponseSealer / ResponseOpener', () => {
  const contentKey = randomBytes(32)
  const parts = ['Paris', ' is', ' the', ' capital', '.', '']

  it('round-trips a stream in order and ends on the final chunk', () => {
    const chunks = sealStream(contentKey, parts)
    const opener = new ResponseOpener(contentKey)
    const out: string[] = []
    for (const [i, chunk] of chunks.entries()) {
      expect(opener.finished).toBe(false)
      const { plaintext, final } = opener.open(chunk)
      expect(final).toBe(i === chunks.length - 1)
      out.push(text(plaintext))
    }
    expect(out).toEqual(parts)
    expect(opener.finished).toBe(true)
    expect(() => opener.finish()).not.toThrow()
  })

  it('adds 17 bytes per chunk and a 32-byte salt to the first', () => {
    const chunks = sealStream(contentKey, ['abc', 'de', ''])
    expect(chunks.map((c) => c.length)).toEqual([
      RESPONSE_SALT_BYTES + 3 + RESPONSE_CHUNK_OVERHEAD,
      2 + RESPONSE_CHUNK_OVERHEAD,
      RESPONSE_CHUNK_OVERHEAD,
    ])
  })

  it('handles a single final chunk and long streams (counter past one byte)', () => {
    const single = sealStream(contentKey, ['only'])
    expect(new ResponseOpener(contentKey).open(single[0]!)).toMatchObject({ final: true })
    const many = Array.from({ length: 600 }, (_, i) => `t${i}`)
    const opener = new ResponseOpener(contentKey)
    expect(sealStream(contentKey, many).map((chunk) => text(opener.open(chunk).plaintext))).toEqual(many)
    expect(opener.finished).toBe(true)
  })

  it('seals the same plaintext differently in every stream (random per-stream salt)', () => {
    const [a] = sealStream(contentKey, ['same'])
    const [b] = sealStream(contentKey, ['same'])
    expect(Buffer.from(a!).equals(Buffer.from(b!))).toBe(false)
    // Chunks of two streams under one content key cannot be mixed.
    const one = sealStream(contentKey, ['a', 'b', 'c'])
    const two = sealStream(contentKey, ['x', 'y', 'z'])
    const opener = new ResponseOpener(contentKey)
    opener.open(one[0]!)
    expect(() => opener.open(two[1]!)).toThrow(DecryptionError)
  })

  it('rejects a flipped bit anywhere with DecryptionError', () => {
    const chunks = sealStream(contentKey, ['first chunk', 'second', 'last'])
    for (const index of [0, 1, 2]) {
      const chunk = chunks[index]!
      for (let bit = 0; bit < chunk.length * 8; bit += 5) {
        const opener = new ResponseOpener(contentKey)
        for (let i = 0; i < index; i++) opener.open(chunks[i]!)
        expect(() => opener.open(flipBit(chunk, bit))).toThrow(DecryptionError)
      }
    }
  })

  it('rejects reordered, duplicated and dropped chunks', () => {
    const chunks = sealStream(contentKey, ['a', 'b', 'c', 'd'])
    const [c0, c1, c2, c3] = chunks as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
    const attempts: [string, Uint8Array[], Uint8Array][] = [
      ['second chunk first', [], c1],
      ['third chunk second', [c0], c2],
      ['first chunk twice', [c0], c0],
      ['middle chunk twice', [c0, c1], c1],
      ['final chunk early (one dropped)', [c0, c1], c3],
      ['first chunk replayed later', [c0, c1, c2], c0],
    ]
    for (const [label, accepted, rejected] of attempts) {
      const opener = new ResponseOpener(contentKey)
      for (const chunk of accepted) opener.open(chunk)
      expect(() => opener.open(rejected), label).toThrow(DecryptionError)
    }
  })

  it('rejects data after the final chunk', () => {
    const chunks = sealStream(contentKey, ['a', 'end'])
    const opener = new ResponseOpener(contentKey)
    for (const chunk of chunks) opener.open(chunk)
    expect(() => opener.open(chunks[1]!)).toThrow(DecryptionError)
    expect(() => opener.open(new Uint8Array(40))).toThrow(DecryptionError)
  })

  it('reports a stream that ends before its final chunk with StreamTruncatedError', () => {
    const chunks = sealStream(contentKey, ['a', 'b', 'end'])
    const opener = new ResponseOpener(contentKey)
    opener.open(chunks[0]!)
    opener.open(chunks[1]!)
    expect(opener.finished).toBe(false)
    expect(() => opener.finish()).toThrow(StreamTruncatedError)
    expect(() => new ResponseOpener(contentKey).finish()).toThrow(StreamTruncatedError)
  })

  it('authenticates the final flag: a non-final chunk cannot stand in for the end', () => {
    // A stream whose sender never marked an end is truncated, whatever the relay claims.
    const sealer = new ResponseSealer(contentKey)
    const opener = new ResponseOpener(contentKey)
    expect(opener.open(sealer.seal(utf8('partial'), false)).final).toBe(false)
    expect(() => opener.finish()).toThrow(StreamTruncatedError)
  })

  it('rejects a wrong content key, short chunks and non-bytes with DecryptionError', () => {
    const chunks = sealStream(contentKey, ['a', 'b'])
    expect(() => new ResponseOpener(randomBytes(32)).open(chunks[0]!)).toThrow(DecryptionError)
    expect(() => new ResponseOpener(contentKey).open(chunks[0]!.subarray(0, RESPONSE_SALT_BYTES + 16))).toThrow(
      DecryptionError,
    )
    expect(() => new ResponseOpener(contentKey).open(new Uint8Array(0))).toThrow(DecryptionError)
    expect(() => new ResponseOpener(contentKey).open('chunk' as unknown as Uint8Array)).toThrow(DecryptionError)
  })

  it('stays failed after an error, even for the genuine next chunk', () => {
    const chunks = sealStream(contentKey, ['a', 'b'])
    const opener = new ResponseOpener(contentKey)
    expect(() => opener.open(chunks[1]!)).toThrow(DecryptionError)
    expect(() => opener.open(chunks[0]!)).toThrow(DecryptionError)
  })

  it('refuses to seal after the final chunk and checks its arguments', () => {
    const sealer = new ResponseSealer(contentKey)
    sealer.seal(utf8('end'), true)
    expect(sealer.finished).toBe(true)
    expect(() => sealer.seal(utf8('more'), false)).toThrow(/already sealed/)
    expect(() => new ResponseSealer(new Uint8Array(16))).toThrow(/contentKey must be 32 bytes/)
    expect(() => new ResponseOpener('key' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => new ResponseSealer(contentKey).seal(utf8('x'), 1 as unknown as boolean)).toThrow(/final/)
  })
})
