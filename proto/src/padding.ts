/**
 * Padding: what the coordinator (and anyone who relays sealed bytes) can learn from sizes.
 *
 * Every request body and every response piece is padded, inside the ciphertext, to exactly one of a small set of
 * lengths (the bucket tables below), so a ciphertext's length says which bucket its plaintext fell in and nothing
 * finer. The padding is an extra msgpack field, `padding`, holding zero bytes; decoders accept and drop it, and
 * bodies sealed before padding existed (no such field) still decode.
 *
 * What sizes still tell (see docs/padding.md): the request bucket (a prompt of 3 KiB and one of 4 KiB look the same,
 * one of 3 KiB and one of 30 KiB do not), how many chunks an answer took and when each was sent, and which chunks
 * are large (a burst of text coalesced into one chunk). The answer's length in tokens is bounded by its chunk count
 * and the clear `maxTokens`; the usage the node reports to the coordinator for billing states it exactly.
 */
import { MAX_SEALED_BODY_BYTES } from './constants.js'
import { REQUEST_NONCE_BYTES, REQUEST_TAG_BYTES } from './crypto/request-envelope.js'

/** The largest encoded request body: sealing adds a nonce and a tag, and the result must fit `MAX_SEALED_BODY_BYTES`. */
export const MAX_REQUEST_BODY_BYTES = MAX_SEALED_BODY_BYTES - REQUEST_NONCE_BYTES - REQUEST_TAG_BYTES

/**
 * The lengths an encoded request body may have, ascending: powers of two from 1 KiB to 256 KiB, then
 * {@link MAX_REQUEST_BODY_BYTES} (524,260 bytes: 512 KiB less the 28 bytes sealing adds).
 *
 * | bucket (bytes) | holds bodies of (encoded, before padding) |
 * |---|---|
 * | 1,024 | up to 1,011 bytes: a short chat turn |
 * | 2,048 … 262,144 | up to the bucket less 13 bytes |
 * | 524,260 | up to 524,247 bytes: the most a request can carry |
 *
 * The sealed ciphertext the coordinator sees is the bucket plus 28 bytes, and the clear header's `sizeBucket` is the
 * bucket itself. Eleven buckets: the coordinator learns a body's size to within a factor of two.
 */
export const REQUEST_BODY_BUCKETS_BYTES: readonly number[] = Object.freeze([
  1_024,
  2_048,
  4_096,
  8_192,
  16_384,
  32_768,
  65_536,
  131_072,
  262_144,
  MAX_REQUEST_BODY_BYTES,
])

/**
 * The lengths an encoded response piece (the plaintext of one sealed chunk) may have, ascending.
 *
 * | bucket (bytes) | typical content |
 * |---|---|
 * | 64 | up to 41 bytes of UTF-8 text: the first chunk and most coalesced chunks |
 * | 256 | up to 233 bytes of text; the final chunk (its usage counts take up to 60 bytes) with up to 170 |
 * | 1,024 | a burst of up to 1,000 bytes of text |
 * | 4,096 | a burst of up to 4,072 bytes of text |
 * | 16,384 | the largest piece: {@link MAX_RESPONSE_PIECE_TEXT_CHARS} of text in any script (at most 12,288 bytes), with usage counts |
 *
 * A sealed chunk on the wire is its bucket plus `RESPONSE_CHUNK_OVERHEAD` (17) bytes, and the first chunk of a
 * stream another `RESPONSE_SALT_BYTES` (32): the coordinator sees at most ten distinct chunk sizes, whatever the
 * tokens are.
 */
export const RESPONSE_PIECE_BUCKETS_BYTES: readonly number[] = Object.freeze([64, 256, 1_024, 4_096, 16_384])

/**
 * The most text (UTF-16 code units, as `string.length` counts) one response piece carries. At three UTF-8 bytes a
 * code unit at worst, 4,096 units and the usage counts fit the largest response bucket with room to spare; a node
 * splits longer text over several pieces ({@link splitResponseText}).
 */
export const MAX_RESPONSE_PIECE_TEXT_CHARS = 4_096

/** Name of the msgpack field that carries the padding. */
export const PADDING_FIELD = 'padding'

/** Bytes the padding field costs besides its content: the key `padding` (a fixstr, 8 bytes) and a bin32 header (5). */
export const PADDING_FIELD_OVERHEAD_BYTES = 8 + 5

// The padding field's key, encoded: fixstr header 0xa7 then the seven ASCII letters.
const PADDING_KEY_BYTES = Uint8Array.from([0xa0 | PADDING_FIELD.length, ...new TextEncoder().encode(PADDING_FIELD)])
const BIN32 = 0xc6
const FIXMAP_MIN = 0x80
const FIXMAP_MAX = 0x8f
const MAP16 = 0xde
const MAP32 = 0xdf

/**
 * Pads an encoded msgpack map to the smallest bucket that can hold it: adds a `padding` field of zero bytes whose
 * length makes the result exactly that bucket. A map already exactly a bucket long is returned as it is. The padding
 * is a bin32 whatever its length (msgpack allows a wider header than needed), so every length from
 * {@link PADDING_FIELD_OVERHEAD_BYTES} bytes up can be added exactly.
 *
 * @param encodedMap a msgpack map (as `encodeMsgpack` writes objects) without a `padding` key
 * @param buckets ascending lengths
 * @returns the padded bytes, or `undefined` when `encodedMap` fits no bucket
 * @throws {TypeError} when `encodedMap` does not start with a msgpack map header
 */
export function padEncodedMap(encodedMap: Uint8Array, buckets: readonly number[]): Uint8Array | undefined {
  const header = readMapHeader(encodedMap)
  const newHeader = writeMapHeader(header.entries + 1, header.bytes)
  const overhead = newHeader.length - header.bytes + PADDING_FIELD_OVERHEAD_BYTES
  const length = encodedMap.length
  const bucket = buckets.find((candidate) => candidate === length || candidate >= length + overhead)
  if (bucket === undefined) return undefined
  if (bucket === length) return encodedMap
  const paddingBytes = bucket - length - overhead
  const padded = new Uint8Array(bucket)
  padded.set(newHeader, 0)
  let offset = newHeader.length
  padded.set(encodedMap.subarray(header.bytes), offset)
  offset += length - header.bytes
  padded.set(PADDING_KEY_BYTES, offset)
  offset += PADDING_KEY_BYTES.length
  padded[offset] = BIN32
  new DataView(padded.buffer).setUint32(offset + 1, paddingBytes)
  // The padding itself: the zeros `new Uint8Array` already holds.
  return padded
}

/** The smallest bucket at least `length` long, or `undefined` when `length` exceeds them all. */
export function bucketFor(length: number, buckets: readonly number[]): number | undefined {
  return buckets.find((bucket) => bucket >= length)
}

/**
 * Splits `text` into parts of at most `maxChars` UTF-16 code units, never between the two halves of a surrogate
 * pair, so each part is valid text on its own. Joining the parts gives `text` back. Empty text is one empty part.
 */
export function splitResponseText(text: string, maxChars = MAX_RESPONSE_PIECE_TEXT_CHARS): string[] {
  if (!Number.isInteger(maxChars) || maxChars < 2) throw new RangeError('splitResponseText: maxChars must be >= 2')
  if (text.length <= maxChars) return [text]
  const parts: string[] = []
  let start = 0
  while (start < text.length) {
    let end = Math.min(start + maxChars, text.length)
    if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--
    parts.push(text.slice(start, end))
    start = end
  }
  return parts
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function readMapHeader(bytes: Uint8Array): { entries: number; bytes: number } {
  const first = bytes[0]
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (first !== undefined && first >= FIXMAP_MIN && first <= FIXMAP_MAX) return { entries: first & 0x0f, bytes: 1 }
  if (first === MAP16 && bytes.length >= 3) return { entries: view.getUint16(1), bytes: 3 }
  if (first === MAP32 && bytes.length >= 5) return { entries: view.getUint32(1), bytes: 5 }
  throw new TypeError('padEncodedMap: the bytes do not start with a msgpack map header')
}

/** A map header for `entries`, no narrower than `atLeastBytes` (so the header keeps its width when it can). */
function writeMapHeader(entries: number, atLeastBytes: number): Uint8Array {
  if (entries <= 0x0f && atLeastBytes <= 1) return Uint8Array.of(FIXMAP_MIN | entries)
  if (entries <= 0xffff && atLeastBytes <= 3) return Uint8Array.of(MAP16, entries >> 8, entries & 0xff)
  const header = new Uint8Array(5)
  header[0] = MAP32
  new DataView(header.buffer).setUint32(1, entries)
  return header
}
