import type { PrivateKey } from '@libp2p/interface'
import {
  CLOCK_SKEW_MS,
  DecryptionError,
  generateX25519KeyPair,
  type HardwareSummary,
  KEY_OVERLAP_MS,
  KEY_ROTATION_INTERVAL_MS,
  type NodeCertificate,
  openRequest,
  type SealedRequest,
  signNodeCertificate,
} from '@lull/proto'

export interface KeyRingOptions {
  /** The node's libp2p identity key: it signs every certificate. */
  identity: PrivateKey
  nodeId: string
  modelId: string
  modelDigest: string
  hardware: HardwareSummary
  /** @default KEY_ROTATION_INTERVAL_MS (24 h) */
  rotationIntervalMs?: number
  /** @default KEY_OVERLAP_MS (1 h) */
  overlapMs?: number
  /** Clock, for tests. @default Date.now */
  now?: () => number
}

interface HeldKey {
  secretKey: Uint8Array
  certificate: NodeCertificate
}

/**
 * The node's HPKE keys. Each key is certified by the identity key for one rotation interval plus an overlap; at
 * rotation a fresh key becomes current and the previous one keeps opening requests until its certificate expires
 * (plus the clock-skew allowance), so clients holding an older catalogue are not cut off. Expired secret keys are
 * zeroed and forgotten.
 */
export class KeyRing {
  readonly rotationIntervalMs: number
  readonly #options: KeyRingOptions
  readonly #overlapMs: number
  readonly #now: () => number
  #keys: HeldKey[] = []

  private constructor(options: KeyRingOptions) {
    this.#options = options
    this.rotationIntervalMs = options.rotationIntervalMs ?? KEY_ROTATION_INTERVAL_MS
    this.#overlapMs = options.overlapMs ?? KEY_OVERLAP_MS
    this.#now = options.now ?? Date.now
  }

  static async create(options: KeyRingOptions): Promise<KeyRing> {
    const ring = new KeyRing(options)
    await ring.rotate()
    return ring
  }

  /** The certificate of the current key: the one to advertise. */
  get certificate(): NodeCertificate {
    return (this.#keys[0] as HeldKey).certificate
  }

  /** How many keys can open requests right now (the current one, and the previous during the overlap). */
  get heldKeys(): number {
    this.#forgetExpired()
    return this.#keys.length
  }

  /** Makes a fresh key current and certifies it. */
  async rotate(): Promise<NodeCertificate> {
    const nowMs = this.#now()
    const { secretKey, publicKey } = generateX25519KeyPair()
    const { identity, nodeId, modelId, modelDigest, hardware } = this.#options
    const certificate = await signNodeCertificate(
      {
        nodeId,
        hpkePublicKey: publicKey,
        modelId,
        modelDigest,
        hardware,
        notBeforeMs: nowMs - CLOCK_SKEW_MS,
        notAfterMs: nowMs + this.rotationIntervalMs + this.#overlapMs,
      },
      identity,
    )
    this.#keys.unshift({ secretKey, certificate })
    this.#forgetExpired()
    return certificate
  }

  /**
   * Opens a request with whichever held key it was sealed to, newest first.
   * @throws {NotARecipientError} when no key was wrapped for this node
   * @throws {DecryptionError} when none of the held keys opens it (tampered, or sealed to a forgotten key)
   */
  async open(sealed: SealedRequest, aad: Uint8Array): Promise<{ body: Uint8Array; contentKey: Uint8Array }> {
    this.#forgetExpired()
    let failure: unknown = new DecryptionError('no held key opens this request; fetch the catalogue again')
    for (const key of this.#keys) {
      try {
        return await openRequest(sealed, this.#options.nodeId, key.secretKey, aad)
      } catch (error) {
        if (!(error instanceof DecryptionError)) throw error
        failure = error
      }
    }
    throw failure
  }

  /** Zeroes and forgets everything. */
  dispose(): void {
    for (const key of this.#keys) key.secretKey.fill(0)
    this.#keys = []
  }

  #forgetExpired(): void {
    const cutoff = this.#now() - CLOCK_SKEW_MS
    // The current key is never dropped, even if the node slept through its rotation.
    const kept = this.#keys.filter((key, index) => index === 0 || key.certificate.notAfterMs > cutoff)
    for (const key of this.#keys) if (!kept.includes(key)) key.secretKey.fill(0)
    this.#keys = kept
  }
}
