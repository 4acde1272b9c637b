import { ErrorCode, LullError, type NodeCertificate, type RegisterMessage, verifyNodeCertificate } from '@lull/proto'
import type { Accounts } from './accounts/admission.js'
import type { NodeChannel, NodeEntry } from './registry.js'

/**
 * Checks a node's registration (its join token, then its certificate: signed by the connecting peer's key and
 * valid now) and returns the registry entry it gets, or the error to refuse it with.
 */
export async function admitNode(
  accounts: Accounts,
  channel: NodeChannel,
  peerId: string,
  message: RegisterMessage,
  nowMs = Date.now(),
): Promise<NodeEntry | LullError> {
  const refused = accounts.admitNode(peerId, message.joinToken)
  if (refused !== undefined) return refused
  const { certificate } = message
  if (!(await verifyNodeCertificate(certificate, { nowMs, nodeId: peerId }))) {
    return new LullError(
      ErrorCode.InvalidCertificate,
      'the certificate is not valid for this node: it must be signed by the connecting peer key, for its model, and within its validity window',
    )
  }
  return {
    nodeId: peerId,
    modelId: certificate.modelId,
    certificate,
    slots: message.slots,
    inFlight: 0,
    benchmark: message.benchmark,
    state: 'serving',
    lastSeenMs: nowMs,
    registeredAtMs: nowMs,
    channel,
  }
}

/**
 * Checks a registered node's rotated certificate: it must verify for the same node, model and digest. Returns the
 * error to refuse it with, or undefined when it may replace the old one.
 */
export async function checkRenewedCertificate(
  entry: NodeEntry,
  certificate: NodeCertificate,
  nowMs = Date.now(),
): Promise<LullError | undefined> {
  const valid =
    certificate.modelId === entry.modelId &&
    certificate.modelDigest === entry.certificate.modelDigest &&
    (await verifyNodeCertificate(certificate, { nowMs, nodeId: entry.nodeId }))
  if (valid) return undefined
  return new LullError(
    ErrorCode.InvalidCertificate,
    'the new certificate must be signed by this node for the same model and digest, and be valid now; the old one stays in use',
  )
}
