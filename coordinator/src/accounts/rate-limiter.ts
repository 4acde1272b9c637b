/** A token bucket per key: `burst` requests at once, refilled at `ratePerSecond`. In memory (resets on restart). */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; atMs: number }>()

  /** Takes one request from `keyId`'s bucket: 0 when allowed, else the wait in ms until one is available. */
  take(keyId: string, ratePerSecond: number, burst: number, nowMs = Date.now()): number {
    const capacity = Math.max(1, burst)
    const bucket = this.#buckets.get(keyId) ?? { tokens: capacity, atMs: nowMs }
    const elapsedMs = Math.max(0, nowMs - bucket.atMs)
    bucket.tokens = Math.min(capacity, bucket.tokens + (elapsedMs / 1000) * ratePerSecond)
    bucket.atMs = nowMs
    this.#buckets.set(keyId, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    if (ratePerSecond <= 0) return Number.POSITIVE_INFINITY
    return Math.max(1, Math.ceil(((1 - bucket.tokens) / ratePerSecond) * 1000))
  }
}
