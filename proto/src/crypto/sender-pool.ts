/**
 * HPKE sender contexts prepared ahead of need. Setting up a sender (a fresh ephemeral X25519 key, the DH with the
 * recipient's key, the key schedule) is most of the cost of sealing a request: ~0.5 ms per candidate node, paid on
 * the way to the first token. None of it depends on the message, so a client can do it while it waits anyway (for
 * an answer to stream in) and take a ready context when it next seals to the same node.
 *
 * Each prepared context is handed out once and forgotten: it is never used for two messages, so every request still
 * carries its own ephemeral key. Contexts are kept for the most recently used recipient keys only (`maxKeys`), so a
 * node key that rotates away falls out as others are used.
 */
import { assertBytes } from './bytes.js'
import { HPKE_KEY_BYTES, type HpkeSender, hpkeSetupSender } from './hpke.js'

/** Recipient keys a pool prepares contexts for when none is given: ample for a client's usual candidates. */
export const DEFAULT_SENDER_POOL_KEYS = 32

export class HpkeSenderPool {
  /** The HPKE `info` every context of this pool is set up with. */
  readonly info: Uint8Array
  readonly #maxKeys: number
  /** Recipient keys (base64) in least-recently-used order, with their bytes. */
  readonly #wanted = new Map<string, Uint8Array>()
  /** One prepared context per recipient key at most. */
  readonly #ready = new Map<string, Promise<HpkeSender>>()

  constructor(info: Uint8Array, { maxKeys = DEFAULT_SENDER_POOL_KEYS }: { maxKeys?: number } = {}) {
    assertBytes(info, 'HpkeSenderPool: info')
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError('HpkeSenderPool: maxKeys must be at least 1')
    this.info = Uint8Array.from(info)
    this.#maxKeys = maxKeys
  }

  /** Contexts prepared and not yet taken. */
  get readyCount(): number {
    return this.#ready.size
  }

  /**
   * A sender context for `recipientPublicKey`: the prepared one if there is one (it is then gone from the pool),
   * else one set up now. Either way the key is remembered, and the next {@link refill} prepares another for it.
   * Rejects with `RangeError` if the key is not a usable X25519 public key, as {@link hpkeSetupSender} does.
   */
  take(recipientPublicKey: Uint8Array): Promise<HpkeSender> {
    assertBytes(recipientPublicKey, 'HpkeSenderPool.take: recipientPublicKey', HPKE_KEY_BYTES)
    const id = Buffer.from(recipientPublicKey).toString('base64')
    const ready = this.#ready.get(id)
    this.#ready.delete(id)
    this.#remember(id, recipientPublicKey)
    return ready ?? hpkeSetupSender(recipientPublicKey, this.info)
  }

  /** Prepares one context for each remembered key that has none. Returns when they are all set up. */
  async refill(): Promise<void> {
    const preparing: Promise<unknown>[] = []
    for (const [id, publicKey] of this.#wanted) {
      if (this.#ready.has(id)) continue
      const sender = hpkeSetupSender(publicKey, this.info)
      this.#ready.set(id, sender)
      // A key that cannot be used is forgotten; take() would set up afresh and report the error to its caller.
      preparing.push(
        sender.catch(() => {
          if (this.#ready.get(id) === sender) this.#ready.delete(id)
          this.#wanted.delete(id)
        }),
      )
    }
    await Promise.all(preparing)
  }

  /** Forgets every key and prepared context. */
  clear(): void {
    this.#wanted.clear()
    this.#ready.clear()
  }

  #remember(id: string, publicKey: Uint8Array): void {
    this.#wanted.delete(id)
    this.#wanted.set(id, Uint8Array.from(publicKey))
    while (this.#wanted.size > this.#maxKeys) {
      const oldest = this.#wanted.keys().next().value as string
      this.#wanted.delete(oldest)
      this.#ready.delete(oldest)
    }
  }
}
