import { randomBytes } from 'node:crypto'
import { LullError } from '@lull/proto'
import { describe, expect, it } from 'vitest'
import {
  REPLAY_CLOCK_SKEW_MS,
  REPLAY_EXPIRY_SLOT_MS,
  REPLAY_MAX_ADMITTED_PER_SECOND,
  REPLAY_WINDOW_MS,
  ReplayGuard,
} from './replay-guard.js'

const T0 = 1_700_000_000_000

/** A wall clock the test moves, and a monotonic clock that follows it (no steps). */
function clock(startMs = T0) {
  const state = { nowMs: startMs }
  return { state, now: () => state.nowMs, monotonicNow: () => state.nowMs - startMs }
}

function admitError(guard: ReplayGuard, nonce: Uint8Array, createdAtMs: number): LullError {
  try {
    guard.admit(nonce, createdAtMs)
  } catch (error) {
    expect(error).toBeInstanceOf(LullError)
    return error as LullError
  }
  throw new Error('the request was admitted')
}

describe('ReplayGuard', () => {
  it('admits a request once and refuses the same nonce again as replayed, not retryable', () => {
    const { state: _, ...clocks } = clock()
    const guard = new ReplayGuard(clocks)
    const nonce = randomBytes(16)
    guard.admit(nonce, T0)
    const error = admitError(guard, Uint8Array.from(nonce), T0)
    expect(error.code).toBe('replayed')
    expect(error.isRetryable).toBe(false)
    // Another nonce with the same timestamp is a different request.
    guard.admit(randomBytes(16), T0)
    expect(guard.size).toBe(2)
  })

  it('accepts timestamps from now - window to now + skew and refuses the rest as request-expired', () => {
    const { state: _, ...clocks } = clock()
    const guard = new ReplayGuard({ ...clocks, windowMs: 60_000, clockSkewMs: 5_000 })
    guard.admit(randomBytes(16), T0 - 60_000)
    guard.admit(randomBytes(16), T0 + 5_000)
    const old = admitError(guard, randomBytes(16), T0 - 60_001)
    expect(old.code).toBe('request-expired')
    expect(old.message).toMatch(/sealed 60\.0 s ago, outside this node's 60 s replay window/)
    const future = admitError(guard, randomBytes(16), T0 + 5_001)
    expect(future.code).toBe('request-expired')
    expect(future.message).toMatch(/in the future.*check the client's clock/)
    // Refused requests are not remembered.
    expect(guard.size).toBe(2)
  })

  it('judges the timestamp before the nonce: a replay after the window is expired, not replayed', () => {
    const { state, ...clocks } = clock()
    const guard = new ReplayGuard({ ...clocks, windowMs: 10_000, clockSkewMs: 0 })
    const nonce = randomBytes(16)
    guard.admit(nonce, T0)
    state.nowMs = T0 + 10_001
    expect(admitError(guard, nonce, T0).code).toBe('request-expired')
  })

  it('forgets a nonce once its window has ended, and not before', () => {
    const { state, ...clocks } = clock()
    const guard = new ReplayGuard({ ...clocks, windowMs: 10_000, clockSkewMs: 0 })
    const nonce = randomBytes(16)
    guard.admit(nonce, T0)
    state.nowMs = T0 + 4_000
    guard.admit(randomBytes(16), state.nowMs)
    // Still inside the window of the first request: held, and a replay is refused.
    state.nowMs = T0 + 10_000
    expect(admitError(guard, nonce, T0).code).toBe('replayed')
    expect(guard.size).toBe(2)
    // The first window has ended (and its expiry slot with it): the next admission forgets it.
    state.nowMs = T0 + 10_000 + REPLAY_EXPIRY_SLOT_MS
    guard.admit(randomBytes(16), state.nowMs)
    expect(guard.size).toBe(2)
    // When the second request's window ends too, it goes: held are the two admitted since.
    state.nowMs = T0 + 4_000 + 10_000 + REPLAY_EXPIRY_SLOT_MS
    guard.admit(randomBytes(16), state.nowMs)
    expect(guard.size).toBe(2)
  })

  it('holds nonces sealed in the future until their own window ends', () => {
    const { state, ...clocks } = clock()
    const guard = new ReplayGuard({ ...clocks, windowMs: 10_000, clockSkewMs: 5_000 })
    const nonce = randomBytes(16)
    guard.admit(nonce, T0 + 5_000)
    // 12 s later the request is still inside its window (it claims T0 + 5 s): a replay must still be refused.
    state.nowMs = T0 + 12_000
    expect(admitError(guard, nonce, T0 + 5_000).code).toBe('replayed')
  })

  it('forgets nothing early when the wall clock steps forward and back (an NTP correction)', () => {
    const { state, now } = clock()
    let monotonicMs = 0
    const guard = new ReplayGuard({ now, monotonicNow: () => monotonicMs, windowMs: 10_000, clockSkewMs: 0 })
    const nonce = randomBytes(16)
    guard.admit(nonce, T0)
    // The wall clock jumps an hour ahead while one second passes, and a request is admitted then.
    state.nowMs = T0 + 3_600_000
    monotonicMs += 1_000
    guard.admit(randomBytes(16), state.nowMs)
    // The clock is corrected: the first request is inside its window again, so a replay must still be refused.
    state.nowMs = T0 + 2_000
    monotonicMs += 1_000
    expect(admitError(guard, nonce, T0).code).toBe('replayed')
    // Once its window has ended on both clocks it is forgotten (the other one is held until its own ends).
    state.nowMs = T0 + 10_000 + REPLAY_EXPIRY_SLOT_MS
    monotonicMs = 10_000 + REPLAY_EXPIRY_SLOT_MS
    guard.admit(randomBytes(16), state.nowMs)
    expect(guard.size).toBe(2)
  })

  it('when full, refuses new requests with a retryable no-capacity and forgets nothing still in the window', () => {
    const { state, ...clocks } = clock()
    const guard = new ReplayGuard({ ...clocks, windowMs: 10_000, clockSkewMs: 0, maxEntries: 3 })
    const nonces = [randomBytes(16), randomBytes(16), randomBytes(16)]
    for (const nonce of nonces) guard.admit(nonce, T0)
    const full = admitError(guard, randomBytes(16), T0)
    expect(full.code).toBe('no-capacity')
    expect(full.isRetryable).toBe(true)
    expect(guard.size).toBe(3)
    // Every admitted nonce is still refused as a replay while its window lasts.
    state.nowMs = T0 + 9_999
    for (const nonce of nonces) expect(admitError(guard, nonce, T0).code).toBe('replayed')
    expect(admitError(guard, randomBytes(16), state.nowMs).code).toBe('no-capacity')
    // Once their windows end, room is made and new requests are admitted again.
    state.nowMs = T0 + 10_000 + REPLAY_EXPIRY_SLOT_MS
    guard.admit(randomBytes(16), state.nowMs)
    expect(guard.size).toBe(1)
  })

  it('sizes its default cap from the window, the clock skew and the design rate', () => {
    const guard = new ReplayGuard()
    const lifetimeMs = REPLAY_WINDOW_MS + REPLAY_CLOCK_SKEW_MS + REPLAY_EXPIRY_SLOT_MS
    expect(guard.maxEntries).toBe((REPLAY_MAX_ADMITTED_PER_SECOND * lifetimeMs) / 1000)
    expect(guard.maxEntries).toBe(120_200)
    expect(new ReplayGuard({ windowMs: 1_000, clockSkewMs: 0 }).maxEntries).toBe(REPLAY_MAX_ADMITTED_PER_SECOND * 2)
  })

  it('stays bounded under a sustained load at its design rate for longer than the window, refusing nothing', () => {
    const { state, ...clocks } = clock()
    const guard = new ReplayGuard(clocks)
    const intervalMs = 1000 / REPLAY_MAX_ADMITTED_PER_SECOND
    let peak = 0
    // 8 simulated minutes (more than the window) at the design rate, clients' clocks up to 2 s off either way.
    for (let i = 0; i < 8 * 60 * REPLAY_MAX_ADMITTED_PER_SECOND; i++) {
      state.nowMs = T0 + i * intervalMs
      guard.admit(randomBytes(16), state.nowMs + ((i % 5) - 2) * 1_000)
      peak = Math.max(peak, guard.size)
    }
    // Held: about rate × window (the nonces of the last five minutes), well under the cap.
    const expected = (REPLAY_MAX_ADMITTED_PER_SECOND * REPLAY_WINDOW_MS) / 1000
    expect(guard.size).toBeGreaterThan(expected * 0.98)
    expect(peak).toBeLessThan(expected * 1.02)
    expect(peak).toBeLessThan(guard.maxEntries)
  })

  it('rejects nonsensical options', () => {
    expect(() => new ReplayGuard({ windowMs: -1 })).toThrow(RangeError)
    expect(() => new ReplayGuard({ maxEntries: 0 })).toThrow(RangeError)
  })
})
