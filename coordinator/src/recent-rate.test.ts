import { describe, expect, it } from 'vitest'
import { RecentRate } from './recent-rate.js'

describe('RecentRate', () => {
  it('averages over the window once it is full, and forgets what slid out of it', () => {
    const rate = new RecentRate({ windowMs: 60_000, bucketMs: 1_000, sinceMs: 0 })
    rate.add(600, 100_000)
    rate.add(600, 130_500)
    expect(rate.perSecond(130_999)).toBeCloseTo(1_200 / 60)
    // The first 600 was added at 100 s: at 160 s it is outside the last minute.
    expect(rate.perSecond(160_000)).toBeCloseTo(600 / 60)
    expect(rate.perSecond(200_000)).toBe(0)
    expect(rate.total(130_999)).toBe(1_200)
    expect(rate.total(160_000)).toBe(600)
  })

  it('a young rate is averaged over its own age, never less than one bucket', () => {
    const rate = new RecentRate({ windowMs: 60_000, bucketMs: 1_000, sinceMs: 10_000 })
    rate.add(500, 10_100)
    expect(rate.perSecond(10_200)).toBeCloseTo(500)
    rate.add(500, 19_000)
    expect(rate.perSecond(20_000)).toBeCloseTo(100)
  })

  it('reuses a bucket slot for a later second instead of adding to its old count', () => {
    const rate = new RecentRate({ windowMs: 3_000, bucketMs: 1_000, sinceMs: 0 })
    rate.add(30, 10_000)
    rate.add(60, 13_000) // same slot as 10 s, three seconds later
    expect(rate.perSecond(13_500)).toBeCloseTo(60 / 3)
  })

  it('ignores amounts that are not positive numbers', () => {
    const rate = new RecentRate({ sinceMs: 0 })
    rate.add(0, 1_000)
    rate.add(-5, 1_000)
    rate.add(Number.NaN, 1_000)
    expect(rate.perSecond(1_500)).toBe(0)
  })
})
