import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { decodeMsgpack, encodeMsgpack } from './codec/msgpack.js'
import { MAX_SEALED_BODY_BYTES } from './constants.js'
import { sealRequest } from './crypto/request-envelope.js'
import { LullError } from './errors.js'
import {
  MAX_REQUEST_BODY_BYTES,
  MAX_RESPONSE_PIECE_TEXT_CHARS,
  PADDING_FIELD_OVERHEAD_BYTES,
  padEncodedMap,
  REQUEST_BODY_BUCKETS_BYTES,
  RESPONSE_PIECE_BUCKETS_BYTES,
  splitResponseText,
} from './padding.js'
import {
  decodeRequestBody,
  decodeResponsePiece,
  encodeRequestBody,
  encodeResponsePiece,
  type RequestBody,
  type ResponsePiece,
} from './payload.js'

function body(content: string, extra: Partial<RequestBody> = {}): RequestBody {
  return {
    messages: [{ role: 'user', content }],
    maxTokens: 64,
    temperature: 0.7,
    createdAtMs: 1_700_000_000_000,
    nonce: Uint8Array.from(randomBytes(16)),
    ...extra,
  }
}

/** The body as plain data: msgpack decodes bytes to a `Buffer` or a `Uint8Array` depending on its input. */
function plain(value: RequestBody): RequestBody {
  return { ...value, nonce: Uint8Array.from(value.nonce) }
}

/** True when `text` has no lone surrogate (what `String.prototype.isWellFormed` checks, ES2024). */
function isWellFormed(text: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text)
}

/** Text lengths that land on both sides of every bucket boundary, and in between. */
function lengthsAround(buckets: readonly number[], below: number): number[] {
  const lengths = new Set<number>([0, 1, 2, 3])
  for (const bucket of buckets) {
    for (let delta = -40; delta <= 40; delta++) {
      const length = bucket - below + delta
      if (length >= 0) lengths.add(length)
    }
    lengths.add(Math.floor(bucket * 0.7))
  }
  return [...lengths].sort((a, b) => a - b)
}

describe('request body padding', () => {
  it('has the documented buckets, and the largest still seals within MAX_SEALED_BODY_BYTES', async () => {
    expect(REQUEST_BODY_BUCKETS_BYTES).toEqual([1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524260])
    expect(MAX_REQUEST_BODY_BYTES).toBe(524_260)
    const padded = encodeRequestBody(body('x'.repeat(400_000)))
    expect(padded.length).toBe(MAX_REQUEST_BODY_BYTES)
    const recipient = { nodeId: 'node-a', publicKey: randomBytes(32) }
    const { sealed } = await sealRequest(padded, [recipient], new Uint8Array(1))
    expect(sealed.ciphertext.length).toBe(MAX_SEALED_BODY_BYTES)
  })

  it('encodes every body to exactly a bucket, the smallest that holds it, and decodes it back exactly', () => {
    const lengths = lengthsAround(REQUEST_BODY_BUCKETS_BYTES, 120).filter((length) => length < 520_000)
    const seen = new Set<number>()
    for (const length of lengths) {
      const original = body('é'.repeat(length >> 1) + 'a'.repeat(length & 1), { seed: length, stop: ['\n\n'] })
      const unpadded = encodeMsgpack(original).length
      const encoded = encodeRequestBody(original)
      expect(REQUEST_BODY_BUCKETS_BYTES, `a ${unpadded}-byte body`).toContain(encoded.length)
      // The smallest bucket: the next one down could not have held it with its padding field.
      const index = REQUEST_BODY_BUCKETS_BYTES.indexOf(encoded.length)
      if (index > 0)
        expect(unpadded + PADDING_FIELD_OVERHEAD_BYTES).toBeGreaterThan(REQUEST_BODY_BUCKETS_BYTES[index - 1]!)
      expect(plain(decodeRequestBody(encoded))).toEqual(original)
      seen.add(encoded.length)
    }
    // The test reached every bucket.
    expect([...seen].sort((a, b) => a - b)).toEqual(REQUEST_BODY_BUCKETS_BYTES)
  })

  it('leaves no trace of the padding in the decoded body, and decodes unpadded bodies from older clients', () => {
    const original = body('hello')
    const decoded = decodeRequestBody(encodeRequestBody(original))
    expect(Object.keys(decoded)).not.toContain('padding')
    expect(plain(decodeRequestBody(encodeMsgpack(original)))).toEqual(original)
  })

  it('ignores padding the caller passed in, and refuses padding that is not bytes', () => {
    const original = body('hi')
    const withPadding = { ...original, padding: new Uint8Array(5000) } as RequestBody
    expect(encodeRequestBody(withPadding).length).toBe(1024)
    const notBytes = encodeMsgpack({ ...original, padding: 'zzzz' })
    expect(() => decodeRequestBody(notBytes)).toThrow(/invalid request body at padding/)
  })

  it('refuses a body too large for any bucket with a typed invalid-request error', () => {
    const tooLarge = body('x'.repeat(MAX_REQUEST_BODY_BYTES))
    expect(() => encodeRequestBody(tooLarge)).toThrow(LullError)
    try {
      encodeRequestBody(tooLarge)
    } catch (error) {
      expect((error as LullError).code).toBe('invalid-request')
      expect((error as LullError).message).toMatch(/more than the 524260 a sealed request can carry/)
      expect((error as LullError).message).not.toContain('xxxx')
    }
  })
})

describe('response piece padding', () => {
  it('pads every piece to one of the buckets, whatever its text, and decodes it back exactly', () => {
    const seen = new Set<number>()
    const samples = ['a', '€', '😀', 'ñ']
    for (const length of lengthsAround(RESPONSE_PIECE_BUCKETS_BYTES, 20)) {
      for (const sample of samples) {
        const text = sample.repeat(Math.floor(length / new TextEncoder().encode(sample).length))
        if (text.length > MAX_RESPONSE_PIECE_TEXT_CHARS) continue
        for (const piece of [
          { text },
          { text, finish: { reason: 'stop' as const, promptTokens: 12, outputTokens: length } },
        ] satisfies ResponsePiece[]) {
          const encoded = encodeResponsePiece(piece)
          expect(RESPONSE_PIECE_BUCKETS_BYTES).toContain(encoded.length)
          expect(decodeResponsePiece(encoded)).toEqual(piece)
          seen.add(encoded.length)
        }
      }
    }
    expect([...seen].sort((a, b) => a - b)).toEqual(RESPONSE_PIECE_BUCKETS_BYTES)
  })

  it('puts a few tokens in the smallest bucket and the final piece in the next', () => {
    expect(encodeResponsePiece({ text: ' the garden' }).length).toBe(64)
    const final = { text: '', finish: { reason: 'length' as const, promptTokens: 9_999_999, outputTokens: 9_999_999 } }
    expect(encodeResponsePiece(final).length).toBe(256)
  })

  it('fits the longest piece in the largest bucket even when every character takes three bytes', () => {
    const text = '€'.repeat(MAX_RESPONSE_PIECE_TEXT_CHARS)
    const piece = { text, finish: { reason: 'stop' as const, promptTokens: 10_000_000, outputTokens: 10_000_000 } }
    expect(encodeResponsePiece(piece).length).toBe(16_384)
    expect(() => encodeResponsePiece({ text: '€'.repeat(6_000) })).toThrow(/split its text with splitResponseText/)
  })
})

describe('padEncodedMap', () => {
  it('reaches every bucket exactly, including sizes a minimal msgpack header could not hit', () => {
    // With minimal bin headers, adding 266 bytes is impossible (bin8 adds up to 257+8, bin16 from 259+8).
    for (let length = 10; length < 1_500; length++) {
      const map = encodeMsgpack({ t: 'x'.repeat(length) })
      const padded = padEncodedMap(map, [1024, 2048])
      if (map.length === 1024 || map.length + PADDING_FIELD_OVERHEAD_BYTES <= 1024) expect(padded?.length).toBe(1024)
      else expect(padded?.length).toBe(2048)
      expect(decodeMsgpack(padded!)).toMatchObject({ t: 'x'.repeat(length) })
    }
  })

  it('handles fixmap headers, returns maps that are already a bucket unchanged, and reports what does not fit', () => {
    const fixmap = Uint8Array.of(0x81, 0xa1, 0x61, 0x01) // {a: 1}
    const padded = padEncodedMap(fixmap, [64])!
    expect(padded.length).toBe(64)
    expect(decodeMsgpack(padded)).toEqual({ a: 1, padding: new Uint8Array(64 - 4 - PADDING_FIELD_OVERHEAD_BYTES) })
    expect(padEncodedMap(fixmap, [4])).toBe(fixmap)
    expect(padEncodedMap(fixmap, [8, 16])).toBeUndefined()
    expect(() => padEncodedMap(Uint8Array.of(0x91, 0x01), [64])).toThrow(TypeError)
  })
})

describe('splitResponseText', () => {
  it('splits long text into parts no longer than the limit that join back to the text', () => {
    const text = 'abc😀'.repeat(5_000)
    const parts = splitResponseText(text)
    expect(parts.join('')).toBe(text)
    expect(parts.length).toBeGreaterThan(1)
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(MAX_RESPONSE_PIECE_TEXT_CHARS)
      // Never half a surrogate pair at either end: each part is well-formed on its own.
      expect(isWellFormed(part)).toBe(true)
    }
  })

  it('never cuts a surrogate pair, whatever the limit', () => {
    const text = '😀'.repeat(10)
    for (const max of [2, 3, 5]) {
      const parts = splitResponseText(text, max)
      expect(parts.join('')).toBe(text)
      for (const part of parts) expect(isWellFormed(part)).toBe(true)
    }
    expect(isWellFormed('\uD83D')).toBe(false)
    expect(splitResponseText('')).toEqual([''])
    expect(splitResponseText('short')).toEqual(['short'])
  })
})
