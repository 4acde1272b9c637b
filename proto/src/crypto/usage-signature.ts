/**
 * Signed usage: a node signs the token counts it reports for a request with its libp2p Ed25519 identity key, so
 * the coordinator's ledger holds counts the node stands behind (the coordinator never sees the text to count).
 *
 * Signed bytes (canonical, domain-separated): msgpack (msgpackr, `useRecords: false`) of the fixed-order array
 *
 * ```
 * ['lull-usage-v1', requestId, modelId, promptTokens, outputTokens]
 * ```
 *
 * where `requestId` is the coordinator's id for the request (what the node was dispatched), and both counts are
 * written as 64-bit msgpack ints (`int 64`), so the encoding never depends on the size of a number.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { Packr } from 'msgpackr'

export const USAGE_SIGNATURE_DOMAIN = 'lull-usage-v1'
/** Ed25519 signature length. */
export const USAGE_SIGNATURE_BYTES = 64

export interface SignedUsageFields {
  /** The coordinator's request id, as dispatched to the node. */
  requestId: string
  modelId: string
  promptTokens: number
  outputTokens: number
}

const packr = new Packr({ useRecords: false })

/** The exact bytes a usage signature covers. Throws `RangeError` on counts that are not non-negative integers. */
export function usageSigningBytes(fields: SignedUsageFields): Uint8Array {
  for (const count of [fields.promptTokens, fields.outputTokens]) {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('token counts must be non-negative integers')
  }
  return packr.pack([
    USAGE_SIGNATURE_DOMAIN,
    String(fields.requestId),
    String(fields.modelId),
    BigInt(fields.promptTokens),
    BigInt(fields.outputTokens),
  ])
}

/**
 * Ed25519 keys as OpenSSL key objects. `@libp2p/crypto` imports the key anew for every signature and verification,
 * which is most of their cost (~0.25 ms to sign, ~0.5 ms to verify, per request on the way to `end`); the same
 * operations on a kept key object take a fraction of that. A node signs with one key; a coordinator verifies for
 * up to {@link MAX_VERIFY_KEYS} nodes, then forgets the oldest.
 */
const signingKeys = new WeakMap<PrivateKey, KeyObject>()
const verifyKeys = new Map<string, KeyObject>()
const MAX_VERIFY_KEYS = 4_096
const ED25519_SEED_BYTES = 32

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url')
}

function signingKeyOf(identityKey: PrivateKey): KeyObject {
  let key = signingKeys.get(identityKey)
  if (key === undefined) {
    // libp2p keeps an Ed25519 private key as seed ‖ public key.
    const d = base64url(identityKey.raw.subarray(0, ED25519_SEED_BYTES))
    const x = base64url(identityKey.publicKey.raw)
    key = createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d, x } })
    signingKeys.set(identityKey, key)
  }
  return key
}

/** The node's Ed25519 public key (embedded in its peer id), or undefined when `nodeId` holds no such key. */
function verifyKeyOf(nodeId: string): KeyObject | undefined {
  let key = verifyKeys.get(nodeId)
  if (key === undefined) {
    const peerId = peerIdFromString(nodeId)
    if (peerId.type !== 'Ed25519') return undefined
    key = createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: base64url(peerId.publicKey.raw) } })
    if (verifyKeys.size >= MAX_VERIFY_KEYS) verifyKeys.delete(verifyKeys.keys().next().value as string)
    verifyKeys.set(nodeId, key)
  }
  return key
}

/** Signs usage with the node's Ed25519 identity key. */
export async function signUsage(fields: SignedUsageFields, identityKey: PrivateKey): Promise<Uint8Array> {
  if (identityKey?.type !== 'Ed25519') throw new TypeError('signUsage: identityKey must be an Ed25519 key')
  return new Uint8Array(sign(null, usageSigningBytes(fields), signingKeyOf(identityKey)))
}

/**
 * Verifies a usage signature by the Ed25519 key embedded in `nodeId` (a libp2p peer id string). Resolves `false`
 * for anything invalid or malformed; never throws or rejects.
 */
export async function verifyUsageSignature(
  fields: SignedUsageFields,
  signature: Uint8Array,
  nodeId: string,
): Promise<boolean> {
  try {
    if (!(signature instanceof Uint8Array) || signature.length !== USAGE_SIGNATURE_BYTES) return false
    const key = verifyKeyOf(nodeId)
    if (key === undefined) return false
    return verify(null, usageSigningBytes(fields), key, signature)
  } catch {
    return false
  }
}
