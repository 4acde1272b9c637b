/**
 * Faster primitives for `@hpke/core`'s DHKEM(X25519, HKDF-SHA256) suite, from Node's own crypto (OpenSSL).
 *
 * `@hpke/core` runs X25519 and HKDF through WebCrypto: each of the ~20 steps of a seal or an open is an async call
 * into the thread pool, so one HPKE operation cost 2-4 ms on a two-core machine (docs/PERFORMANCE.md), and a client
 * pays one per candidate node on every request. The same steps done synchronously by `node:crypto` take a tenth of
 * that. The HPKE construction itself (labels, key schedule, nonces, the AEAD) stays in `@hpke/core`; only the two
 * primitives below are swapped in through its documented extension points (a `Dhkem` with its own primitives, a
 * KDF and an AEAD). RFC 9180's test vectors (hpke.test.ts) pin the result.
 */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from 'node:crypto'
import {
  type AeadEncryptionContext,
  AeadId,
  type AeadInterface,
  Dhkem,
  HkdfSha256Native,
  InvalidParamError,
  KemId,
  type MontgomeryECDH,
  XCurveDhkemPrimitives,
} from '@hpke/common'
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, aeadOpen, aeadSeal } from './aead.js'

const HASH_BYTES = 32
const X25519_KEY_BYTES = 32
/** The DER prefix that wraps a raw X25519 private key as PKCS#8 (RFC 8410). */
const PKCS8_X25519_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
])
function pkcs8Of(raw: Uint8Array): Buffer {
  if (raw.length !== X25519_KEY_BYTES) throw new RangeError(`X25519 keys are ${X25519_KEY_BYTES} bytes`)
  return Buffer.concat([PKCS8_X25519_PREFIX, raw])
}

/**
 * Private keys as OpenSSL key objects, by their raw bytes. Importing raw bytes as PKCS#8 costs ~0.6 ms (OpenSSL's
 * decoder search), far more than the X25519 itself (~0.05 ms), so key objects are kept: an ephemeral key until its
 * one DH, a long-lived key (a node's request key) for reuse, up to a small bound.
 */
const ephemeralKeys = new Map<string, KeyObject>()
const heldKeys = new Map<string, KeyObject>()
const MAX_HELD_KEYS = 16
const MAX_EPHEMERAL_KEYS = 1_024

function privateKeyObject(secretKey: Uint8Array): KeyObject {
  const id = Buffer.from(secretKey).toString('base64')
  const ephemeral = ephemeralKeys.get(id)
  if (ephemeral !== undefined) {
    ephemeralKeys.delete(id)
    return ephemeral
  }
  let held = heldKeys.get(id)
  if (held === undefined) {
    held = createPrivateKey({ key: pkcs8Of(secretKey), format: 'der', type: 'pkcs8' })
    if (heldKeys.size >= MAX_HELD_KEYS) heldKeys.delete(heldKeys.keys().next().value as string)
    heldKeys.set(id, held)
  }
  return held
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== X25519_KEY_BYTES) throw new RangeError(`X25519 keys are ${X25519_KEY_BYTES} bytes`)
  return createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') },
    format: 'jwk',
  })
}

function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  const id = Buffer.from(secretKey).toString('base64')
  const key = ephemeralKeys.get(id) ?? privateKeyObject(secretKey)
  const x = key.export({ format: 'jwk' }).x
  if (x === undefined) throw new Error('X25519 key without a public half')
  return new Uint8Array(Buffer.from(x, 'base64url'))
}

function sharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return new Uint8Array(
    diffieHellman({ privateKey: privateKeyObject(secretKey), publicKey: publicKeyObject(publicKey) }),
  )
}

/** A fresh key pair from OpenSSL; its key object waits for the one DH it is made for. */
function randomSecretKey(seed?: Uint8Array): Uint8Array {
  if (seed !== undefined) {
    if (seed.length !== X25519_KEY_BYTES) throw new RangeError(`X25519 seeds are ${X25519_KEY_BYTES} bytes`)
    return Uint8Array.from(seed)
  }
  const { privateKey } = generateKeyPairSync('x25519')
  const d = privateKey.export({ format: 'jwk' }).d
  if (d === undefined) throw new Error('X25519 key without a private half')
  const secretKey = new Uint8Array(Buffer.from(d, 'base64url'))
  // Bounded in case a caller generates keys it never uses: the oldest are dropped (and imported again if used).
  if (ephemeralKeys.size >= MAX_EPHEMERAL_KEYS) ephemeralKeys.delete(ephemeralKeys.keys().next().value as string)
  ephemeralKeys.set(Buffer.from(secretKey).toString('base64'), privateKey)
  return secretKey
}

/**
 * X25519 (RFC 7748) in the shape `XCurveDhkemPrimitives` expects of a curve. OpenSSL refuses an all-zero shared
 * secret (a low-order public key), which RFC 9180 §7.1.4 requires implementations to reject.
 */
export const nodeX25519: MontgomeryECDH = {
  scalarMult: sharedSecret,
  scalarMultBase: publicKeyOf,
  getSharedSecret: sharedSecret,
  getPublicKey: publicKeyOf,
  utils: { randomSecretKey: async (seed?: Uint8Array) => randomSecretKey(seed) },
  GuBytes: Uint8Array.from({ length: X25519_KEY_BYTES }, (_, index) => (index === 0 ? 9 : 0)),
  lengths: { secretKey: X25519_KEY_BYTES, publicKey: X25519_KEY_BYTES, seed: X25519_KEY_BYTES },
  keygen(seed?: Uint8Array) {
    const secretKey = randomSecretKey(seed)
    return { secretKey, publicKey: publicKeyOf(secretKey) }
  },
}

function bytesOf(data: ArrayBufferLike | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data as ArrayBufferLike)
}

function arrayBufferOf(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}

/** HKDF-SHA256 (RFC 5869) computed synchronously by `node:crypto`, with `@hpke/core`'s labelled wrappers. */
export class NodeHkdfSha256 extends HkdfSha256Native {
  override async extract(salt: ArrayBufferLike | ArrayBufferView, ikm: ArrayBufferLike | ArrayBufferView) {
    const saltBytes = salt.byteLength === 0 ? new Uint8Array(HASH_BYTES) : bytesOf(salt)
    if (saltBytes.byteLength !== HASH_BYTES) {
      throw new InvalidParamError('The salt length must be the same as the hashSize')
    }
    return arrayBufferOf(createHmac('sha256', saltBytes).update(bytesOf(ikm)).digest())
  }

  override async expand(prk: ArrayBufferLike | ArrayBufferView, info: ArrayBufferLike | ArrayBufferView, len: number) {
    if (len > 255 * HASH_BYTES) throw new Error('Entropy limit reached')
    const key = bytesOf(prk)
    const infoBytes = bytesOf(info)
    const okm = new Uint8Array(len)
    let previous = new Uint8Array(0)
    for (let counter = 1, written = 0; written < len; counter++) {
      previous = new Uint8Array(
        createHmac('sha256', key).update(previous).update(infoBytes).update(Uint8Array.of(counter)).digest(),
      )
      const take = Math.min(previous.length, len - written)
      okm.set(previous.subarray(0, take), written)
      written += take
    }
    return arrayBufferOf(okm)
  }

  override async extractAndExpand(
    salt: ArrayBufferLike | ArrayBufferView,
    ikm: ArrayBufferLike | ArrayBufferView,
    info: ArrayBufferLike | ArrayBufferView,
    len: number,
  ) {
    return hkdfSync('sha256', bytesOf(ikm), bytesOf(salt), bytesOf(info), len)
  }
}

/** DHKEM(X25519, HKDF-SHA256) (RFC 9180 §4.1, KEM id 0x0020) on the primitives above. */
export class NodeDhkemX25519HkdfSha256 extends Dhkem {
  override readonly id = KemId.DhkemX25519HkdfSha256
  override readonly secretSize = 32
  override readonly encSize = 32
  override readonly publicKeySize = 32
  override readonly privateKeySize = 32

  constructor() {
    const kdf = new NodeHkdfSha256()
    super(KemId.DhkemX25519HkdfSha256, new XCurveDhkemPrimitives('X25519', X25519_KEY_BYTES, nodeX25519, kdf), kdf)
  }
}

/**
 * ChaCha20-Poly1305 (AEAD id 0x0003) on `node:crypto`, in the shape `@hpke/core` takes as its `aead`: the same
 * algorithm as `@hpke/chacha20poly1305`, whose pure-JavaScript version cost ~0.25 ms hot and more cold to wrap one
 * 32-byte content key. A failed `open` throws; `@hpke/core` turns that into its OpenError.
 */
export class NodeChacha20Poly1305 implements AeadInterface {
  readonly id = AeadId.Chacha20Poly1305
  readonly keySize = AEAD_KEY_BYTES
  readonly nonceSize = AEAD_NONCE_BYTES
  readonly tagSize = AEAD_TAG_BYTES

  createEncryptionContext(key: ArrayBufferLike | ArrayBufferView): AeadEncryptionContext {
    const keyBytes = Uint8Array.from(bytesOf(key))
    return {
      seal: async (iv, data, aad) => arrayBufferOf(aeadSeal(keyBytes, bytesOf(iv), bytesOf(data), bytesOf(aad))),
      open: async (iv, data, aad) => arrayBufferOf(aeadOpen(keyBytes, bytesOf(iv), bytesOf(data), bytesOf(aad))),
    }
  }
}
