/**
 * The request envelope: a request body sealed once, readable by any one of k candidate nodes.
 *
 * - The body is sealed with ChaCha20-Poly1305 under a fresh random 32-byte content key and a random 12-byte nonce:
 *   `ciphertext = nonce ‖ AEAD(contentKey, nonce, aad, body)`.
 * - The content key is wrapped with HPKE ({@link hpkeSeal}) for each candidate, with `info` = `lull request v1`
 *   and HPKE aad = `SHA-256(ciphertext) ‖ aad`: a wrapped key opens only together with this exact body and header.
 * - `aad` is the caller's clear routing header (encoded bytes): changing it makes both the body and every wrapped
 *   key fail to open.
 *
 * The content key is returned to both sides: the node seals its response stream under it and the client opens it
 * (see `response-stream.ts`).
 */
import { DecryptionError, LullError, MalformedMessageError, NotARecipientError } from '../errors.js'
import { aeadOpen, aeadSeal, randomBytes, sha256 } from './aead.js'
import { assertBytes, assertNonEmptyString, concatBytes, equalBytes, utf8 } from './bytes.js'
import { HPKE_KEY_BYTES, hpkeOpen, hpkeSetupSender } from './hpke.js'
import { HpkeSenderPool } from './sender-pool.js'

/** HPKE `info` (as UTF-8) for wrapping request content keys. */
export const REQUEST_HPKE_INFO = 'lull request v1'
const requestInfo = utf8(REQUEST_HPKE_INFO)
/** Length of a request content key. */
export const CONTENT_KEY_BYTES = 32
/** Length of the body nonce at the start of {@link SealedRequest.ciphertext}. */
export const REQUEST_NONCE_BYTES = 12
/** Length of the body's authentication tag. */
export const REQUEST_TAG_BYTES = 16

export interface WrappedKey {
  nodeId: string
  /** HPKE encapsulated key (32 bytes). */
  enc: Uint8Array
  /** The content key sealed with HPKE (32 + 16 bytes). */
  wrappedKey: Uint8Array
}

export interface SealedRequest {
  /** `nonce (12) ‖ sealed body ‖ tag (16)`. */
  ciphertext: Uint8Array
  keys: WrappedKey[]
}

export interface RequestRecipient {
  nodeId: string
  /** The node's certified X25519 HPKE public key. */
  publicKey: Uint8Array
}

/** A pool of HPKE sender contexts prepared for request sealing (see {@link sealRequest}'s `senders`). */
export function createRequestSenderPool(options: { maxKeys?: number } = {}): HpkeSenderPool {
  return new HpkeSenderPool(requestInfo, options)
}

/**
 * Seals `body` once and wraps its content key for every recipient. `aad` is bound into the body and every wrap.
 * `senders` (from {@link createRequestSenderPool}) supplies sender contexts prepared ahead, when it has them.
 * Throws `TypeError` / `RangeError` on bad arguments (no recipients, duplicate node ids, bad public keys).
 */
export async function sealRequest(
  body: Uint8Array,
  recipients: ReadonlyArray<RequestRecipient>,
  aad: Uint8Array,
  { senders }: { senders?: HpkeSenderPool } = {},
): Promise<{ sealed: SealedRequest; contentKey: Uint8Array }> {
  assertBytes(body, 'sealRequest: body')
  assertBytes(aad, 'sealRequest: aad')
  if (senders !== undefined && !equalBytes(senders.info, requestInfo)) {
    throw new RangeError('sealRequest: senders must be a pool made by createRequestSenderPool')
  }
  if (!Array.isArray(recipients) || recipients.length === 0) {
    throw new RangeError('sealRequest: recipients must be a non-empty array')
  }
  const seen = new Set<string>()
  for (const [i, recipient] of recipients.entries()) {
    assertNonEmptyString(recipient?.nodeId, `sealRequest: recipients[${i}].nodeId`)
    assertBytes(recipient.publicKey, `sealRequest: recipients[${i}].publicKey`, HPKE_KEY_BYTES)
    if (seen.has(recipient.nodeId)) throw new RangeError(`sealRequest: duplicate recipient ${recipient.nodeId}`)
    seen.add(recipient.nodeId)
  }

  const contentKey = randomBytes(CONTENT_KEY_BYTES)
  const nonce = randomBytes(REQUEST_NONCE_BYTES)
  const ciphertext = concatBytes(nonce, aeadSeal(contentKey, nonce, body, aad))
  const wrapAad = wrapAssociatedData(ciphertext, aad)
  const keys = await Promise.all(
    recipients.map(async ({ nodeId, publicKey }): Promise<WrappedKey> => {
      const sender = await (senders?.take(publicKey) ?? hpkeSetupSender(publicKey, requestInfo))
      return { nodeId, enc: sender.enc, wrappedKey: await sender.seal(contentKey, wrapAad) }
    }),
  )
  return { sealed: { ciphertext, keys }, contentKey }
}

/**
 * Opens a sealed request as node `nodeId`.
 * Throws {@link NotARecipientError} if no key is wrapped for `nodeId`, {@link DecryptionError} if the wrapped key,
 * the body or `aad` fails authentication, {@link MalformedMessageError} if `sealed` is not shaped like a
 * {@link SealedRequest}, and `TypeError` / `RangeError` for bad `nodeId`, `secretKey` or `aad` arguments.
 */
/**
 * Picks this node's wrapped key out of an untrusted sealed request. Any shape problem, including objects whose
 * property reads throw, becomes a typed error.
 */
function wrappedKeyFor(
  sealed: SealedRequest,
  nodeId: string,
): { ciphertext: Uint8Array; enc: Uint8Array; wrappedKey: Uint8Array } {
  try {
    if (typeof sealed !== 'object' || sealed === null)
      throw new MalformedMessageError('sealed request is not an object')
    const { ciphertext, keys } = sealed
    if (!(ciphertext instanceof Uint8Array)) throw new MalformedMessageError('sealed request ciphertext is not bytes')
    if (!Array.isArray(keys)) throw new MalformedMessageError('sealed request keys is not an array')
    const entry: unknown = keys.find((key: unknown) => isRecord(key) && key.nodeId === nodeId)
    if (!isRecord(entry)) throw new NotARecipientError()
    const { enc, wrappedKey } = entry
    if (!(enc instanceof Uint8Array) || !(wrappedKey instanceof Uint8Array)) {
      throw new DecryptionError('wrapped content key is malformed')
    }
    return { ciphertext, enc, wrappedKey }
  } catch (error) {
    if (error instanceof LullError) throw error
    throw new MalformedMessageError('sealed request is malformed', { cause: error })
  }
}

export async function openRequest(
  sealed: SealedRequest,
  nodeId: string,
  secretKey: Uint8Array,
  aad: Uint8Array,
): Promise<{ body: Uint8Array; contentKey: Uint8Array }> {
  assertNonEmptyString(nodeId, 'openRequest: nodeId')
  assertBytes(secretKey, 'openRequest: secretKey', HPKE_KEY_BYTES)
  assertBytes(aad, 'openRequest: aad')
  const { ciphertext, enc, wrappedKey } = wrappedKeyFor(sealed, nodeId)
  if (ciphertext.length < REQUEST_NONCE_BYTES + REQUEST_TAG_BYTES) {
    throw new DecryptionError('sealed request body is too short')
  }

  const contentKey = await hpkeOpen(secretKey, enc, wrappedKey, {
    info: requestInfo,
    aad: wrapAssociatedData(ciphertext, aad),
  })
  if (contentKey.length !== CONTENT_KEY_BYTES) throw new DecryptionError('wrapped content key has the wrong length')
  const nonce = ciphertext.subarray(0, REQUEST_NONCE_BYTES)
  let body: Uint8Array
  try {
    body = aeadOpen(contentKey, nonce, ciphertext.subarray(REQUEST_NONCE_BYTES), aad)
  } catch (cause) {
    throw new DecryptionError('sealed request body failed authentication', { cause })
  }
  return { body, contentKey }
}

/** HPKE aad for a key wrap: binds the wrap to the exact body ciphertext and the clear header. */
function wrapAssociatedData(ciphertext: Uint8Array, aad: Uint8Array): Uint8Array {
  return concatBytes(sha256(ciphertext), aad)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}
