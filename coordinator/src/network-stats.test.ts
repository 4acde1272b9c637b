import { describe, expect, it } from 'vitest'
import { NetworkStats, TTFT_SAMPLES } from './network-stats.js'

describe('NetworkStats', () => {
  it('counts outcomes, tokens and the last minute', () => {
    const stats = new NetworkStats(0)
    stats.served(100, 10_000)
    stats.served(50, 40_000)
    stats.failed()
    stats.failedOver()
    expect(stats.totals(40_500)).toEqual({
      requestsPerMinute: 2,
      requestsServed: 2,
      requestsFailed: 1,
      failovers: 1,
      tokensPerSecond: 3.7, // 150 tokens over the 40.5 s since counting began
      outputTokensServed: 150,
    })
    // A minute later the first completion has left the window; the totals stay.
    expect(stats.totals(75_000)).toMatchObject({ requestsPerMinute: 1, requestsServed: 2, outputTokensServed: 150 })
  })

  it('reports TTFT percentiles over the latest samples only', () => {
    const stats = new NetworkStats(0)
    expect(stats.totals(1_000).ttftP50Ms).toBeUndefined()
    for (let ms = 1; ms <= 100; ms++) stats.timeToFirstToken(ms)
    expect(stats.totals(1_000)).toMatchObject({ ttftP50Ms: 50, ttftP95Ms: 95 })
    // A full ring of slow samples replaces every earlier one.
    for (let index = 0; index < TTFT_SAMPLES; index++) stats.timeToFirstToken(500)
    expect(stats.totals(1_000)).toMatchObject({ ttftP50Ms: 500, ttftP95Ms: 500 })
  })
})
