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

/** Signs usage with the node's Ed25519 identity key. */
export async function signUsage(fields: SignedUsageFields, identityKey: PrivateKey): Promise<Uint8Array> {
  if (identityKey?.type !== 'Ed25519') throw new TypeError('signUsage: identityKey must be an Ed25519 key')
  return Uint8Array.from(await identityKey.sign(usageSigningBytes(fields)))
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
    const peerId = peerIdFromString(nodeId)
    if (peerId.type !== 'Ed25519') return false
    return (await peerId.publicKey.verify(usageSigningBytes(fields), signature)) === true
  } catch {
    return false
  }
}
