/**
 * The sealed response stream: the node's output, sealed chunk by chunk under the request's content key.
 *
 * A STREAM-like construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015):
 * - the sealer draws a random 32-byte `salt` per stream and sends it in the clear at the start of chunk 0;
 * - `key ‖ nonceBase = HKDF-SHA256(ikm = contentKey, salt, info = 'lull response v1', 32 + 12)`;
 * - chunk i (counting from 0) is `ChaCha20-Poly1305(key, nonceBase XOR be96(i), aad = none, flag ‖ plaintext)`,
 *   where `flag` is 1 on the final chunk and 0 otherwise; chunk 0 is prefixed with `salt`.
 *
 * The salt matters because one content key can be streamed under more than once (the coordinator re-dispatching a
 * request to another candidate, a node running a request twice): without it two streams would reuse the same
 * key and nonces, which leaks the XOR of their plaintexts and lets Poly1305 tags be forged.
 *
 * Because the counter is in the nonce and the final flag is authenticated, the opener detects a flipped bit, a
 * reordered, dropped or duplicated chunk, and data after the final chunk ({@link DecryptionError}), and a stream that
 * ends without its final chunk ({@link StreamTruncatedError} from {@link ResponseOpener.finish}).
 * Each chunk costs {@link RESPONSE_CHUNK_OVERHEAD} bytes, and the first {@link RESPONSE_SALT_BYTES} more.
 * Padding, if wanted, goes inside the plaintext.
 */
import { DecryptionError, StreamTruncatedError } from '../errors.js'
import { aeadOpen, aeadSeal, hkdfSha256, randomBytes } from './aead.js'
import { assertBytes, concatBytes, utf8 } from './bytes.js'

/** HKDF info (as UTF-8) for the response keys. */
export const RESPONSE_HKDF_INFO = 'lull response v1'
const responseInfo = utf8(RESPONSE_HKDF_INFO)
/** Bytes a sealed chunk adds to its plaintext: one flag byte and a 16-byte tag. */
export const RESPONSE_CHUNK_OVERHEAD = 1 + 16
/** Length of the per-stream random salt that starts the first chunk. */
export const RESPONSE_SALT_BYTES = 32

const KEY_BYTES = 32
const NONCE_BYTES = 12
const FLAG_MORE = 0
const FLAG_FINAL = 1

interface StreamKeys {
  key: Uint8Array
  nonceBase: Uint8Array
}

function deriveStreamKeys(contentKey: Uint8Array, salt: Uint8Array): StreamKeys {
  const okm = hkdfSha256(contentKey, salt, responseInfo, KEY_BYTES + NONCE_BYTES)
  return { key: okm.subarray(0, KEY_BYTES), nonceBase: okm.subarray(KEY_BYTES) }
}

/** `nonceBase XOR counter`, the counter big-endian in the last bytes (as HPKE does with sequence numbers). */
function chunkNonce(nonceBase: Uint8Array, counter: number): Uint8Array {
  const nonce = Uint8Array.from(nonceBase)
  let rest = counter
  for (let i = NONCE_BYTES - 1; rest > 0; i--) {
    nonce[i]! ^= rest % 256
    rest = Math.floor(rest / 256)
  }
  return nonce
}

/** Seals a response stream, chunk by chunk, in order. The node side. */
export class ResponseSealer {
  readonly #salt: Uint8Array
  readonly #keys: StreamKeys
  #counter = 0
  #finished = false

  constructor(contentKey: Uint8Array) {
    assertBytes(contentKey, 'ResponseSealer: contentKey', KEY_BYTES)
    this.#salt = randomBytes(RESPONSE_SALT_BYTES)
    this.#keys = deriveStreamKeys(contentKey, this.#salt)
  }

  /** True once the final chunk has been sealed. */
  get finished(): boolean {
    return this.#finished
  }

  /** Seals the next chunk; `final` marks the last one. Throws once the final chunk has been sealed. */
  seal(plaintext: Uint8Array, final: boolean): Uint8Array {
    assertBytes(plaintext, 'ResponseSealer.seal: plaintext')
    if (typeof final !== 'boolean') throw new TypeError('ResponseSealer.seal: final must be a boolean')
    if (this.#finished) throw new Error('ResponseSealer.seal: the final chunk was already sealed')
    if (this.#counter >= Number.MAX_SAFE_INTEGER) throw new RangeError('ResponseSealer.seal: too many chunks')
    const framed = new Uint8Array(plaintext.length + 1)
    framed[0] = final ? FLAG_FINAL : FLAG_MORE
    framed.set(plaintext, 1)
    const nonce = chunkNonce(this.#keys.nonceBase, this.#counter)
    const sealed = aeadSeal(this.#keys.key, nonce, framed)
    const chunk = this.#counter === 0 ? concatBytes(this.#salt, sealed) : sealed
    this.#counter++
    this.#finished = final
    return chunk
  }
}

/**
 * Opens a response stream, strictly in order. The client side.
 * After any failure the opener is spent: every later `open` throws {@link DecryptionError}.
 */
export class ResponseOpener {
  readonly #contentKey: Uint8Array
  /** Derived when the first chunk (which carries the salt) arrives. */
  #keys: StreamKeys | undefined
  #counter = 0
  #finished = false
  #failed = false

  constructor(contentKey: Uint8Array) {
    assertBytes(contentKey, 'ResponseOpener: contentKey', KEY_BYTES)
    this.#contentKey = Uint8Array.from(contentKey)
  }

  /** True once the final chunk has been opened. */
  get finished(): boolean {
    return this.#finished
  }

  /** Opens the next chunk. Throws {@link DecryptionError} if it is not the authentic next chunk of this stream. */
  open(chunk: Uint8Array): { plaintext: Uint8Array; final: boolean } {
    if (this.#failed) throw new DecryptionError('response stream already failed')
    if (this.#finished) return this.#fail('data after the final chunk of the response stream')
    const saltBytes = this.#keys === undefined ? RESPONSE_SALT_BYTES : 0
    if (!(chunk instanceof Uint8Array) || chunk.length < saltBytes + RESPONSE_CHUNK_OVERHEAD) {
      return this.#fail('response chunk is too short')
    }
    let framed: Uint8Array
    try {
      const keys = this.#keys ?? deriveStreamKeys(this.#contentKey, chunk.subarray(0, saltBytes))
      const nonce = chunkNonce(keys.nonceBase, this.#counter)
      framed = aeadOpen(keys.key, nonce, chunk.subarray(saltBytes))
      this.#keys = keys
    } catch (cause) {
      return this.#fail('response chunk failed authentication (tampered, reordered, duplicated or wrong key)', cause)
    }
    const flag = framed[0]
    if (flag !== FLAG_MORE && flag !== FLAG_FINAL) return this.#fail('response chunk has an unknown flag')
    this.#counter++
    this.#finished = flag === FLAG_FINAL
    return { plaintext: framed.subarray(1), final: this.#finished }
  }

  /** Call when the transport says the stream has ended. Throws {@link StreamTruncatedError} before the final chunk. */
  finish(): void {
    if (this.#finished) return
    this.#failed = true
    throw new StreamTruncatedError()
  }

  #fail(message: string, cause?: unknown): never {
    this.#failed = true
    throw new DecryptionError(message, cause === undefined ? undefined : { cause })
  }
}
