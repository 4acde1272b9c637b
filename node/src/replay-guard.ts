import { CLOCK_SKEW_MS, ErrorCode, LullError } from '@lull/proto'

/**
 * How old a request may be when it reaches the node: one sealed (by its `createdAtMs`, on the node's clock) longer
 * ago than this is refused as `request-expired`. It covers the coordinator's queue (30 s at most), failover to a
 * second candidate, and clients whose clocks run a few minutes slow.
 */
export const REPLAY_WINDOW_MS = 5 * 60 * 1000
/** How far in the future a request's `createdAtMs` may be: clients whose clocks run fast. Same as certificates. */
export const REPLAY_CLOCK_SKEW_MS = CLOCK_SKEW_MS
/** Remembered nonces are forgotten in batches: those whose window ended within the same slot of this length. */
export const REPLAY_EXPIRY_SLOT_MS = 1_000
/**
 * The sustained rate of admitted requests the register is sized for. Far above what one node runs (each request
 * is a generation on one of a few sequences), so the cap is reached only by a flood.
 */
export const REPLAY_MAX_ADMITTED_PER_SECOND = 200
/**
 * Bytes one remembered nonce takes on the V8 heap (a 16-character string, its `Set` entry and its place in an
 * expiry slot): `process.memoryUsage().heapUsed` growth over 200,000 admissions, after a full GC, on Node 20.20
 * (x64): 68-70 bytes (resident set: 78-118 bytes).
 */
export const REPLAY_ENTRY_HEAP_BYTES = 70

export interface ReplayGuardOptions {
  /** @default REPLAY_WINDOW_MS (5 min) */
  windowMs?: number
  /** @default REPLAY_CLOCK_SKEW_MS (5 min) */
  clockSkewMs?: number
  /**
   * Most nonces held at once.
   * @default REPLAY_MAX_ADMITTED_PER_SECOND × (window + clock skew + one expiry slot), 120,200 with the defaults
   */
  maxEntries?: number
  /** Wall clock in ms since the epoch (request timestamps are wall-clock). @default Date.now */
  now?: () => number
  /** A clock that never steps, in ms. @default performance.now */
  monotonicNow?: () => number
}

/** The nonces whose windows end within one expiry slot. */
interface ExpirySlot {
  keys: string[]
  /** When, on the monotonic clock, the last of their windows ends (as measured when each was admitted). */
  monotonicEndMs: number
}

/**
 * The node's strike register: refuses a request it has already admitted (a replay by the coordinator, or by anyone
 * who captured the ciphertext) and one whose sealed timestamp is outside the window.
 *
 * A request's `createdAtMs` and `nonce` are inside the ciphertext, bound by its authentication tag, so neither can
 * be changed without the request failing to open. A request is admitted when
 * `now - windowMs <= createdAtMs <= now + clockSkewMs` and its nonce has not been admitted before; its nonce is then
 * held until `createdAtMs + windowMs`, after which the timestamp check alone refuses it. So, while the clock runs
 * steadily, no nonce is held longer than `windowMs + clockSkewMs` (plus one {@link REPLAY_EXPIRY_SLOT_MS}). A nonce is forgotten only when its
 * window has ended both on the wall clock and on a monotonic clock (measured from its admission), so a wall clock
 * that steps forward and back again (an NTP correction, a resumed VM) cannot make the node forget a nonce whose
 * request the stepped-back clock would accept again.
 *
 * Memory is bounded: at most `maxEntries` nonces are held. When the register is full the node refuses new requests
 * with the retryable `no-capacity` (the coordinator or client tries another candidate or later) rather than forget
 * a nonce that is still inside the window, which would let that request be replayed. Measured cost: about
 * {@link REPLAY_ENTRY_HEAP_BYTES} (70) bytes of heap per nonce, so at most about 8.4 MB of heap (some 12 MB resident)
 * at the default cap of 120,200.
 * Only a copy of the 16 nonce bytes is kept, never a view into the decrypted body.
 *
 * What a per-node register cannot see: the same request replayed to another of its candidate nodes within the
 * window. Each candidate can open it and each has its own register, so each may run it once. That is also the
 * legitimate failover path (the coordinator re-dispatching to another candidate when the first fails), so it
 * cannot be refused without losing failover. It is bounded: at most once per candidate (k, 3 by default), the
 * client accepts only one answer, and it shows no prompt to anyone the client did not seal it for.
 *
 * The register lives in memory: a node that restarts starts empty, but it also starts with a fresh HPKE key, so
 * requests sealed to its previous keys no longer open.
 */
export class ReplayGuard {
  readonly windowMs: number
  readonly clockSkewMs: number
  readonly maxEntries: number
  readonly #now: () => number
  readonly #monotonicNow: () => number
  /** Every nonce held, as a 16-character latin1 string. */
  readonly #seen = new Set<string>()
  /** Held nonces by the expiry slot in which their window ends: whole slots are forgotten at once. */
  readonly #bySlot = new Map<number, ExpirySlot>()
  /** When (monotonic) the next slot may be forgotten: the register is not swept before then. */
  #nextSweepMonotonicMs = Number.POSITIVE_INFINITY

  constructor(options: ReplayGuardOptions = {}) {
    this.windowMs = nonNegative(options.windowMs ?? REPLAY_WINDOW_MS, 'windowMs')
    this.clockSkewMs = nonNegative(options.clockSkewMs ?? REPLAY_CLOCK_SKEW_MS, 'clockSkewMs')
    const lifetimeMs = this.windowMs + this.clockSkewMs + REPLAY_EXPIRY_SLOT_MS
    this.maxEntries = options.maxEntries ?? Math.ceil((REPLAY_MAX_ADMITTED_PER_SECOND * lifetimeMs) / 1000)
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError('ReplayGuard: maxEntries must be a positive integer')
    }
    this.#now = options.now ?? (() => Date.now())
    this.#monotonicNow = options.monotonicNow ?? (() => performance.now())
  }

  /** Nonces held now. */
  get size(): number {
    return this.#seen.size
  }

  /**
   * Admits a request once: checks its sealed timestamp and nonce, then remembers the nonce.
   * @throws {LullError} `request-expired` when `createdAtMs` is outside the window, `replayed` when the nonce was
   * admitted before, `no-capacity` (retryable) when the register is full
   */
  admit(nonce: Uint8Array, createdAtMs: number): void {
    const nowMs = this.#now()
    if (createdAtMs < nowMs - this.windowMs) {
      throw new LullError(
        ErrorCode.RequestExpired,
        `the request was sealed ${seconds(nowMs - createdAtMs)} s ago, outside this node's ${seconds(this.windowMs)} s replay window; seal it again (and check the client's clock if this repeats)`,
      )
    }
    if (createdAtMs > nowMs + this.clockSkewMs) {
      throw new LullError(
        ErrorCode.RequestExpired,
        `the request says it was sealed ${seconds(createdAtMs - nowMs)} s in the future, more than the ${seconds(this.clockSkewMs)} s allowed for clock error; check the client's clock`,
      )
    }
    const monotonicNowMs = this.#monotonicNow()
    this.#forgetExpired(nowMs, monotonicNowMs)
    const key = nonceKey(nonce)
    if (this.#seen.has(key)) {
      throw new LullError(
        ErrorCode.Replayed,
        'this node has already run a request with this nonce, so this copy is a replay and was not run; to ask again, send a new request',
      )
    }
    if (this.#seen.size >= this.maxEntries) {
      throw new LullError(
        ErrorCode.NoCapacity,
        `this node's replay register is full (${this.maxEntries} requests within ${seconds(this.windowMs + this.clockSkewMs)} s); retry on another node or later`,
      )
    }
    this.#seen.add(key)
    const slot = Math.floor((createdAtMs + this.windowMs) / REPLAY_EXPIRY_SLOT_MS)
    const endMs = (slot + 1) * REPLAY_EXPIRY_SLOT_MS
    const monotonicEndMs = monotonicNowMs + (endMs - nowMs)
    const entry = this.#bySlot.get(slot)
    if (entry === undefined) {
      this.#bySlot.set(slot, { keys: [key], monotonicEndMs })
      this.#nextSweepMonotonicMs = Math.min(this.#nextSweepMonotonicMs, monotonicEndMs)
    } else {
      entry.keys.push(key)
      entry.monotonicEndMs = Math.max(entry.monotonicEndMs, monotonicEndMs)
    }
  }

  /**
   * Forgets every nonce whose window has ended on both clocks: its request would now be refused by the timestamp
   * check, and would have been even if the wall clock had stepped.
   */
  #forgetExpired(nowMs: number, monotonicNowMs: number): void {
    if (monotonicNowMs < this.#nextSweepMonotonicMs) return
    let next = Number.POSITIVE_INFINITY
    for (const [slot, entry] of this.#bySlot) {
      const endMs = (slot + 1) * REPLAY_EXPIRY_SLOT_MS
      if (endMs <= nowMs && entry.monotonicEndMs <= monotonicNowMs) {
        for (const key of entry.keys) this.#seen.delete(key)
        this.#bySlot.delete(slot)
      } else {
        // Held until its window ends on both clocks: estimate when that is on the monotonic one.
        next = Math.min(next, Math.max(entry.monotonicEndMs, monotonicNowMs + (endMs - nowMs)))
      }
    }
    this.#nextSweepMonotonicMs = next
  }
}

/** A copy of the nonce as a compact string key (never a view that would keep the decrypted body alive). */
function nonceKey(nonce: Uint8Array): string {
  return Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength).toString('latin1')
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)
}

function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`ReplayGuard: ${name} must be a finite number >= 0`)
  return value
}
