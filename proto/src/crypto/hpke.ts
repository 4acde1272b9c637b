/**
 * HPKE (RFC 9180), base mode, one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
 *
 * A thin layer over `@hpke/core`, with X25519, HKDF and ChaCha20-Poly1305 from `node:crypto`
 * (hpke-primitives.ts: several times faster than the WebCrypto path `@hpke/core` uses by default). It takes and
 * returns raw `Uint8Array` keys, checks its arguments at entry, and turns every failure to open into a
 * {@link DecryptionError}: callers never see a library error for hostile input.
 */

import { CipherSuite } from '@hpke/core'
import { DecryptionError } from '../errors.js'
import { assertBytes, equalBytes } from './bytes.js'
import { NodeChacha20Poly1305, NodeDhkemX25519HkdfSha256, NodeHkdfSha256, nodeX25519 } from './hpke-primitives.js'

/** Length of an X25519 public key, secret key and encapsulated key (`Npk`, `Nsk`, `Nenc`). */
export const HPKE_KEY_BYTES = 32
/** Length of the ChaCha20-Poly1305 tag that every HPKE ciphertext carries (`Nt`). */
export const HPKE_TAG_BYTES = 16
/** The largest exporter output HKDF-SHA256 can produce (255 × 32). */
export const HPKE_MAX_EXPORT_BYTES = 255 * 32

export interface HpkeOptions {
  /** Application info bound into the key schedule: use a fixed, domain-separated label. */
  info: Uint8Array
  /** Associated data authenticated with the ciphertext but not encrypted. */
  aad: Uint8Array
}

export interface HpkeKeyPair {
  secretKey: Uint8Array
  publicKey: Uint8Array
}

/** A sender's encryption context (RFC 9180 `SetupBaseS`): seals messages in order, numbered from 0. */
export interface HpkeSender {
  /** The encapsulated key to send along with the ciphertexts. */
  readonly enc: Uint8Array
  seal(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>
  export(exporterContext: Uint8Array, length: number): Promise<Uint8Array>
}

/** A recipient's encryption context (RFC 9180 `SetupBaseR`): opens messages in the order they were sealed. */
export interface HpkeRecipient {
  /** Opens the next message; throws {@link DecryptionError} on any failure. */
  open(ciphertext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>
  export(exporterContext: Uint8Array, length: number): Promise<Uint8Array>
}

export interface HpkeSenderOptions {
  /**
   * Input keying material for the ephemeral key pair (RFC 9180 `ikmE`). FOR DETERMINISTIC TEST VECTORS ONLY:
   * reusing it reuses the ephemeral key. Leave it out and a fresh random ephemeral key is generated.
   */
  ikmE?: Uint8Array
}

const suite = new CipherSuite({
  kem: new NodeDhkemX25519HkdfSha256(),
  kdf: new NodeHkdfSha256(),
  aead: new NodeChacha20Poly1305(),
})

/**
 * Imported recipient keys, by the caller's secret key array. A node opens every request with the same key, and
 * importing it (deriving its public half) is a large part of the cost of an open. Entries keep a copy of the bytes,
 * so an array whose contents change is imported again.
 */
type KemKeyPair = Awaited<ReturnType<typeof suite.kem.generateKeyPair>>
const recipientKeys = new WeakMap<Uint8Array, { bytes: Uint8Array; pair: Promise<KemKeyPair> }>()

function importRecipientKey(secretKey: Uint8Array): Promise<KemKeyPair> {
  const cached = recipientKeys.get(secretKey)
  if (cached !== undefined && equalBytes(cached.bytes, secretKey)) return cached.pair
  const bytes = Uint8Array.from(secretKey)
  const pair = Promise.all([
    suite.kem.deserializePrivateKey(bytes),
    suite.kem.deserializePublicKey(nodeX25519.getPublicKey(bytes)),
  ]).then(([privateKey, publicKey]) => ({ privateKey, publicKey }))
  recipientKeys.set(secretKey, { bytes, pair })
  return pair
}

/** RFC 9180 `DeriveKeyPair(ikm)` for X25519: the same ikm always gives the same key pair. */
export async function hpkeDeriveKeyPair(ikm: Uint8Array): Promise<HpkeKeyPair> {
  assertBytes(ikm, 'hpkeDeriveKeyPair: ikm')
  if (ikm.length < HPKE_KEY_BYTES) throw new RangeError(`hpkeDeriveKeyPair: ikm must be at least 32 bytes`)
  const pair = await suite.kem.deriveKeyPair(ikm)
  const [secretKey, publicKey] = await Promise.all([
    suite.kem.serializePrivateKey(pair.privateKey),
    suite.kem.serializePublicKey(pair.publicKey),
  ])
  return { secretKey: new Uint8Array(secretKey), publicKey: new Uint8Array(publicKey) }
}

/**
 * RFC 9180 `SetupBaseS`: a context that seals any number of messages to one recipient.
 * Throws `RangeError` if `recipientPublicKey` is not a usable X25519 public key (wrong length, low order).
 */
export async function hpkeSetupSender(
  recipientPublicKey: Uint8Array,
  info: Uint8Array,
  options: HpkeSenderOptions = {},
): Promise<HpkeSender> {
  assertBytes(recipientPublicKey, 'hpkeSetupSender: recipientPublicKey', HPKE_KEY_BYTES)
  assertBytes(info, 'hpkeSetupSender: info')
  if (options.ikmE !== undefined) assertBytes(options.ikmE, 'hpkeSetupSender: ikmE')
  let context: Awaited<ReturnType<typeof suite.createSenderContext>>
  try {
    const publicKey = await suite.kem.deserializePublicKey(recipientPublicKey)
    context = await suite.createSenderContext({
      recipientPublicKey: publicKey,
      info,
      ...(options.ikmE === undefined ? {} : { ekm: options.ikmE }),
    })
  } catch (cause) {
    throw new RangeError('hpkeSetupSender: recipientPublicKey is not a valid X25519 public key', { cause })
  }
  return {
    enc: new Uint8Array(context.enc),
    async seal(plaintext, aad) {
      assertBytes(plaintext, 'HpkeSender.seal: plaintext')
      assertBytes(aad, 'HpkeSender.seal: aad')
      return new Uint8Array(await context.seal(plaintext, aad))
    },
    async export(exporterContext, length) {
      assertExport(exporterContext, length)
      return new Uint8Array(await context.export(exporterContext, length))
    },
  }
}

/**
 * RFC 9180 `SetupBaseR`. Throws {@link DecryptionError} if `enc` is malformed (wrong length, low-order point),
 * `TypeError` / `RangeError` if `recipientSecretKey` or `info` is not bytes of the right length.
 */
export async function hpkeSetupRecipient(
  recipientSecretKey: Uint8Array,
  enc: Uint8Array,
  info: Uint8Array,
): Promise<HpkeRecipient> {
  assertBytes(recipientSecretKey, 'hpkeSetupRecipient: recipientSecretKey', HPKE_KEY_BYTES)
  assertBytes(info, 'hpkeSetupRecipient: info')
  if (!(enc instanceof Uint8Array) || enc.length !== HPKE_KEY_BYTES) {
    throw new DecryptionError('HPKE encapsulated key is malformed')
  }
  let context: Awaited<ReturnType<typeof suite.createRecipientContext>>
  try {
    const recipientKey = await importRecipientKey(recipientSecretKey)
    context = await suite.createRecipientContext({ recipientKey, enc, info })
  } catch (cause) {
    throw new DecryptionError('HPKE decapsulation failed', { cause })
  }
  return {
    async open(ciphertext, aad) {
      assertBytes(aad, 'HpkeRecipient.open: aad')
      if (!(ciphertext instanceof Uint8Array) || ciphertext.length < HPKE_TAG_BYTES) {
        throw new DecryptionError('HPKE ciphertext is too short')
      }
      try {
        return new Uint8Array(await context.open(ciphertext, aad))
      } catch (cause) {
        throw new DecryptionError('HPKE ciphertext failed authentication', { cause })
      }
    },
    async export(exporterContext, length) {
      assertExport(exporterContext, length)
      return new Uint8Array(await context.export(exporterContext, length))
    },
  }
}

/** Single-shot HPKE seal (RFC 9180 `SealBase`) under a fresh ephemeral key. */
export async function hpkeSeal(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  options: HpkeOptions,
): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  assertBytes(plaintext, 'hpkeSeal: plaintext')
  assertBytes(options?.aad, 'hpkeSeal: options.aad')
  const sender = await hpkeSetupSender(recipientPublicKey, options.info)
  return { enc: sender.enc, ciphertext: await sender.seal(plaintext, options.aad) }
}

/**
 * Single-shot HPKE open (RFC 9180 `OpenBase`). Throws {@link DecryptionError} on any failure of the sealed data:
 * malformed `enc`, short or tampered ciphertext, wrong key, wrong `info` or `aad`.
 */
export async function hpkeOpen(
  recipientSecretKey: Uint8Array,
  enc: Uint8Array,
  ciphertext: Uint8Array,
  options: HpkeOptions,
): Promise<Uint8Array> {
  assertBytes(options?.aad, 'hpkeOpen: options.aad')
  const recipient = await hpkeSetupRecipient(recipientSecretKey, enc, options.info)
  return recipient.open(ciphertext, options.aad)
}

function assertExport(exporterContext: Uint8Array, length: number): void {
  assertBytes(exporterContext, 'HPKE export: exporterContext')
  if (!Number.isSafeInteger(length) || length < 1 || length > HPKE_MAX_EXPORT_BYTES) {
    throw new RangeError(`HPKE export: length must be an integer in 1..${HPKE_MAX_EXPORT_BYTES}, got ${length}`)
  }
}
