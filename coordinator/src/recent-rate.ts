/**
 * An amount per second over a sliding window (tokens served in the last minute, say), in fixed memory: the window
 * is kept as one bucket per `bucketMs`, so a node's rate costs the same at 1 token/s as at 100,000.
 */
export class RecentRate {
  readonly #windowMs: number
  readonly #bucketMs: number
  readonly #buckets: Float64Array
  /** The bucket number (time / bucketMs) each slot last held. */
  readonly #slotBucket: Float64Array
  readonly #sinceMs: number

  /** `sinceMs`: when counting began; a rate younger than the window is averaged over its own age (≥ 1 bucket). */
  constructor(options: { windowMs?: number; bucketMs?: number; sinceMs?: number } = {}) {
    this.#windowMs = options.windowMs ?? 60_000
    this.#bucketMs = options.bucketMs ?? 1_000
    if (!(this.#bucketMs > 0) || !(this.#windowMs >= this.#bucketMs)) {
      throw new RangeError('RecentRate needs bucketMs > 0 and windowMs >= bucketMs')
    }
    const slots = Math.ceil(this.#windowMs / this.#bucketMs)
    this.#buckets = new Float64Array(slots)
    this.#slotBucket = new Float64Array(slots).fill(-1)
    this.#sinceMs = options.sinceMs ?? Date.now()
  }

  add(amount: number, nowMs = Date.now()): void {
    if (!(amount > 0)) return
    const bucket = Math.floor(nowMs / this.#bucketMs)
    const slot = bucket % this.#buckets.length
    if (this.#slotBucket[slot] !== bucket) {
      this.#slotBucket[slot] = bucket
      this.#buckets[slot] = 0
    }
    this.#buckets[slot] = (this.#buckets[slot] ?? 0) + amount
  }

  /** The amount added within the window ending now. */
  total(nowMs = Date.now()): number {
    const current = Math.floor(nowMs / this.#bucketMs)
    const oldest = current - this.#buckets.length + 1
    let sum = 0
    for (let slot = 0; slot < this.#buckets.length; slot++) {
      const bucket = this.#slotBucket[slot] ?? -1
      if (bucket >= oldest && bucket <= current) sum += this.#buckets[slot] ?? 0
    }
    return sum
  }

  /** The amount added within the window ending now, per second. */
  perSecond(nowMs = Date.now()): number {
    const spanMs = Math.min(this.#windowMs, Math.max(this.#bucketMs, nowMs - this.#sinceMs))
    return this.total(nowMs) / (spanMs / 1000)
  }
}
