/**
 * Node key certificates: a node's X25519 HPKE public key, with the model it serves, its hardware and a validity
 * window, signed by the node's libp2p Ed25519 identity key. The node id (a libp2p peer id string) embeds that
 * identity key, so a certificate is verified from its own contents.
 *
 * Signed bytes (canonical, domain-separated): msgpack (msgpackr, `useRecords: false`) of the fixed-order array
 *
 * ```
 * ['lull-node-cert-v1', nodeId, hpkePublicKey (bin), modelId, modelDigest,
 *  [os, arch, cpuModel, cpuCores, ramTotalBytes, gpu, vramTotalBytes], notBeforeMs, notAfterMs]
 * ```
 *
 * with every integer written as a 64-bit msgpack int (`int 64`), so the encoding never depends on how large a
 * number is or on the encoder's choice between integer and float forms.
 */
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { Packr } from 'msgpackr'
import type { HardwareSummary } from '../hardware.js'
import { HPKE_KEY_BYTES } from './hpke.js'

export const NODE_CERTIFICATE_DOMAIN = 'lull-node-cert-v1'
export const NODE_CERTIFICATE_VERSION = 1
/** Ed25519 signature length. */
export const NODE_CERTIFICATE_SIGNATURE_BYTES = 64
/** Longest accepted node id (an Ed25519 peer id is 52 characters). Bounds work on hostile input. */
export const MAX_NODE_ID_LENGTH = 128
/** Longest accepted model id and hardware string. */
export const MAX_CERTIFICATE_STRING_LENGTH = 256

export interface NodeCertificateFields {
  /** libp2p peer id string of the node's Ed25519 identity key. */
  nodeId: string
  /** The node's X25519 HPKE public key (32 bytes). */
  hpkePublicKey: Uint8Array
  modelId: string
  /** SHA-256 of the model file, 64 lowercase hex digits. */
  modelDigest: string
  hardware: HardwareSummary
  /** Valid from this time (inclusive), ms since the Unix epoch. */
  notBeforeMs: number
  /** Valid until this time (exclusive), ms since the Unix epoch. */
  notAfterMs: number
}

export interface NodeCertificate extends NodeCertificateFields {
  version: 1
  /** Ed25519 signature over {@link nodeCertificateSigningBytes}. */
  signature: Uint8Array
}

export interface VerifyNodeCertificateOptions {
  /** The current time, ms since the Unix epoch. */
  nowMs: number
  /** When given, the certificate must be for this node. */
  nodeId?: string
  /** When given, the certificate must be for this model id. */
  modelId?: string
  /** When given, the certificate must carry this model digest. */
  modelDigest?: string
}

const packr = new Packr({ useRecords: false })

const CERTIFICATE_KEYS = [
  'version',
  'nodeId',
  'hpkePublicKey',
  'modelId',
  'modelDigest',
  'hardware',
  'notBeforeMs',
  'notAfterMs',
  'signature',
] as const
const FIELD_KEYS = CERTIFICATE_KEYS.filter((key) => key !== 'version' && key !== 'signature')
const HARDWARE_KEYS = ['os', 'arch', 'cpuModel', 'cpuCores', 'ramTotalBytes', 'gpu', 'vramTotalBytes'] as const
const GPU_KINDS: ReadonlySet<unknown> = new Set<HardwareSummary['gpu']>(['metal', 'cuda', 'vulkan', 'none'])
const SHA256_HEX = /^[0-9a-f]{64}$/
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Signs a node certificate with the node's libp2p Ed25519 identity key.
 * Throws `TypeError` / `RangeError` if a field is invalid or `nodeId` is not the identity key's peer id.
 */
export async function signNodeCertificate(
  fields: NodeCertificateFields,
  identityKey: PrivateKey,
): Promise<NodeCertificate> {
  const problem = checkFields(fields, false)
  if (problem !== undefined) throw new TypeError(`signNodeCertificate: ${problem}`)
  if (identityKey?.type !== 'Ed25519') throw new TypeError('signNodeCertificate: identityKey must be an Ed25519 key')
  if (peerIdFromPrivateKey(identityKey).toString() !== fields.nodeId) {
    throw new RangeError('signNodeCertificate: nodeId is not the peer id of identityKey')
  }
  const certificateFields = copyFields(fields)
  const signature = await identityKey.sign(nodeCertificateSigningBytes(certificateFields))
  return { version: NODE_CERTIFICATE_VERSION, ...certificateFields, signature: Uint8Array.from(signature) }
}

/**
 * Verifies a node certificate: its shape, the validity window at `nowMs`, the optional expected node id, model id
 * and digest, and the Ed25519 signature by the key embedded in `nodeId`. Resolves `false` for anything invalid or
 * malformed; never throws or rejects.
 */
export async function verifyNodeCertificate(
  certificate: unknown,
  options: VerifyNodeCertificateOptions,
): Promise<boolean> {
  try {
    if (!isNodeCertificate(certificate) || !isRecord(options)) return false
    const { nowMs, nodeId, modelId, modelDigest } = options
    if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) return false
    if (nowMs < certificate.notBeforeMs || nowMs >= certificate.notAfterMs) return false
    if (nodeId !== undefined && nodeId !== certificate.nodeId) return false
    if (modelId !== undefined && modelId !== certificate.modelId) return false
    if (modelDigest !== undefined && modelDigest !== certificate.modelDigest) return false

    const peerId = peerIdFromString(certificate.nodeId)
    if (peerId.type !== 'Ed25519') return false
    // Only the canonical string form of the key's peer id: one key, one node id.
    if (peerIdFromPublicKey(peerId.publicKey).toString() !== certificate.nodeId) return false
    const signed = nodeCertificateSigningBytes(certificate)
    return (await peerId.publicKey.verify(signed, certificate.signature)) === true
  } catch {
    return false
  }
}

/**
 * True if `value` is shaped like a {@link NodeCertificate}: exactly the expected own properties, each of the right
 * type, length and range. Does not check the signature or the validity window: use {@link verifyNodeCertificate}.
 */
export function isNodeCertificate(value: unknown): value is NodeCertificate {
  try {
    if (!isPlainRecord(value) || !hasExactKeys(value, CERTIFICATE_KEYS)) return false
    if (value.version !== NODE_CERTIFICATE_VERSION) return false
    const { signature } = value
    if (!(signature instanceof Uint8Array) || signature.length !== NODE_CERTIFICATE_SIGNATURE_BYTES) return false
    const fields: Record<string, unknown> = {}
    for (const key of FIELD_KEYS) fields[key] = value[key]
    return checkFields(fields, true) === undefined
  } catch {
    return false
  }
}

/** The exact bytes a node certificate's signature covers. Expects fields that passed validation. */
export function nodeCertificateSigningBytes(fields: NodeCertificateFields): Uint8Array {
  const { hardware } = fields
  return packr.pack([
    NODE_CERTIFICATE_DOMAIN,
    fields.nodeId,
    Uint8Array.from(fields.hpkePublicKey),
    fields.modelId,
    fields.modelDigest,
    [
      hardware.os,
      hardware.arch,
      hardware.cpuModel,
      BigInt(hardware.cpuCores),
      BigInt(hardware.ramTotalBytes),
      hardware.gpu,
      BigInt(hardware.vramTotalBytes),
    ],
    BigInt(fields.notBeforeMs),
    BigInt(fields.notAfterMs),
  ])
}

/** A detached copy of validated fields, so later changes by the caller cannot alter a signed certificate. */
function copyFields(fields: NodeCertificateFields): NodeCertificateFields {
  const { hardware } = fields
  return {
    nodeId: fields.nodeId,
    hpkePublicKey: Uint8Array.from(fields.hpkePublicKey),
    modelId: fields.modelId,
    modelDigest: fields.modelDigest,
    hardware: {
      os: hardware.os,
      arch: hardware.arch,
      cpuModel: hardware.cpuModel,
      cpuCores: hardware.cpuCores,
      ramTotalBytes: hardware.ramTotalBytes,
      gpu: hardware.gpu,
      vramTotalBytes: hardware.vramTotalBytes,
    },
    notBeforeMs: fields.notBeforeMs,
    notAfterMs: fields.notAfterMs,
  }
}

/**
 * Returns what is wrong with `fields`, or undefined if they are valid certificate fields. `exact` also rejects
 * properties of `hardware` beyond those signed (received certificates); signing just leaves them out.
 */
function checkFields(fields: unknown, exact: boolean): string | undefined {
  if (!isPlainRecord(fields)) return 'fields must be a plain object'
  const { nodeId, hpkePublicKey, modelId, modelDigest, hardware, notBeforeMs, notAfterMs } = fields
  if (!isBoundedString(nodeId, MAX_NODE_ID_LENGTH)) return `nodeId must be a string of 1..${MAX_NODE_ID_LENGTH} chars`
  if (!(hpkePublicKey instanceof Uint8Array) || hpkePublicKey.length !== HPKE_KEY_BYTES) {
    return `hpkePublicKey must be ${HPKE_KEY_BYTES} bytes`
  }
  if (!isBoundedString(modelId, MAX_CERTIFICATE_STRING_LENGTH)) return 'modelId must be a non-empty bounded string'
  if (typeof modelDigest !== 'string' || !SHA256_HEX.test(modelDigest)) {
    return 'modelDigest must be 64 lowercase hex digits'
  }
  const hardwareProblem = checkHardware(hardware, exact)
  if (hardwareProblem !== undefined) return hardwareProblem
  if (!isUint(notBeforeMs) || !isUint(notAfterMs)) return 'notBeforeMs and notAfterMs must be non-negative integers'
  if (notBeforeMs >= notAfterMs) return 'notBeforeMs must be before notAfterMs'
  return undefined
}

function checkHardware(hardware: unknown, exact: boolean): string | undefined {
  if (!isPlainRecord(hardware)) return 'hardware must be a plain object'
  if (exact && !hasExactKeys(hardware, HARDWARE_KEYS)) return `hardware must have exactly ${HARDWARE_KEYS.join(', ')}`
  const { os, arch, cpuModel, cpuCores, ramTotalBytes, gpu, vramTotalBytes } = hardware
  if (!isBoundedString(os, MAX_CERTIFICATE_STRING_LENGTH)) return 'hardware.os must be a non-empty bounded string'
  if (!isBoundedString(arch, MAX_CERTIFICATE_STRING_LENGTH)) return 'hardware.arch must be a non-empty bounded string'
  // The CPU model may be unknown (empty).
  if (!isBoundedString(cpuModel, MAX_CERTIFICATE_STRING_LENGTH, 0)) return 'hardware.cpuModel must be a bounded string'
  if (!isUint(cpuCores) || cpuCores < 1) return 'hardware.cpuCores must be a positive integer'
  if (!isUint(ramTotalBytes)) return 'hardware.ramTotalBytes must be a non-negative integer'
  if (!GPU_KINDS.has(gpu)) return 'hardware.gpu must be metal, cuda, vulkan or none'
  if (!isUint(vramTotalBytes)) return 'hardware.vramTotalBytes must be a non-negative integer'
  return undefined
}

/** A well-formed string (no lone surrogates, so its UTF-8 encoding is one-to-one) of `min..max` UTF-16 units. */
function isBoundedString(value: unknown, max: number, min = 1): value is string {
  return typeof value === 'string' && value.length >= min && value.length <= max && !LONE_SURROGATE.test(value)
}

function isUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

/** A non-array object whose prototype is `Object.prototype` or null (what JSON and msgpack decoders produce). */
function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (!isRecord(value) || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

function hasExactKeys(value: Record<string, unknown>, keys: readonly string[]): boolean {
  const own = Reflect.ownKeys(value)
  return own.length === keys.length && keys.every((key) => Object.hasOwn(value, key))
}
