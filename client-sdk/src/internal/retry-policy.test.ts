import { ErrorCode, LullError } from '@lull/proto'
import { describe, expect, it } from 'vitest'
import { MAX_RETRY_DELAY_MS, nextRetryDelayMs, type RetryInfo, withRetries } from './retry-policy.js'

const retryable = () => new LullError(ErrorCode.NoCapacity, 'busy')
const fatal = () => new LullError(ErrorCode.ModelNotFound, 'no such model')

describe('nextRetryDelayMs', () => {
  const attempt = { error: retryable(), retriesSoFar: 0, maxRetries: 5, textYielded: false }

  it('doubles from 500 ms up to the cap, less up to 25 % jitter', () => {
    const noJitter = () => 0
    const delays = [0, 1, 2, 3, 4, 5].map((retriesSoFar) =>
      nextRetryDelayMs({ ...attempt, retriesSoFar, maxRetries: 10 }, noJitter),
    )
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, MAX_RETRY_DELAY_MS])
    expect(nextRetryDelayMs(attempt, () => 1)).toBe(375)
    expect(nextRetryDelayMs(attempt, () => 0.5)).toBe(438)
  })

  it('honours a retry-after hint carried by the error, and gives up on one that is too long', () => {
    const hinted = Object.assign(retryable(), { retryAfterMs: 3_000 })
    expect(nextRetryDelayMs({ ...attempt, error: hinted }, () => 0.9)).toBe(3_000)
    const tooLong = Object.assign(retryable(), { retryAfterMs: 10 * 60_000 })
    expect(nextRetryDelayMs({ ...attempt, error: tooLong })).toBeUndefined()
  })

  it('never retries after text, past maxRetries, or a non-retryable error', () => {
    expect(nextRetryDelayMs({ ...attempt, textYielded: true })).toBeUndefined()
    expect(nextRetryDelayMs({ ...attempt, retriesSoFar: 5 })).toBeUndefined()
    expect(nextRetryDelayMs({ ...attempt, error: fatal() })).toBeUndefined()
    expect(nextRetryDelayMs({ ...attempt, error: new Error('plain') })).toBeUndefined()
  })
})

/** An attempt that fails with `error` after yielding `events`. */
async function* failing(events: string[], error: Error): AsyncGenerator<string> {
  yield* events
  throw error
}

async function* succeeding(events: string[]): AsyncGenerator<string> {
  yield* events
}

describe('withRetries', () => {
  function harness(attempts: Array<() => AsyncGenerator<string>>, maxRetries = 2) {
    const slept: number[] = []
    const retries: RetryInfo[] = []
    let started = 0
    const events = withRetries(() => (attempts[started++] as () => AsyncGenerator<string>)(), {
      maxRetries,
      random: () => 0,
      sleep: async (ms) => {
        slept.push(ms)
      },
      onRetry: (info) => retries.push(info),
    })
    const collect = async () => {
      const seen: string[] = []
      for await (const event of events) seen.push(event)
      return seen
    }
    return { collect, slept, retries, started: () => started }
  }

  it('starts a fresh attempt after retryable failures before the first event, with backoff', async () => {
    const { collect, slept, retries, started } = harness([
      () => failing([], retryable()),
      () => failing([], retryable()),
      () => succeeding(['a', 'b']),
    ])
    expect(await collect()).toEqual(['a', 'b'])
    expect(started()).toBe(3)
    expect(slept).toEqual([500, 1000])
    expect(retries.map((info) => info.retry)).toEqual([1, 2])
  })

  it('gives up after maxRetries and throws the last error', async () => {
    const last = retryable()
    const { collect, started } = harness(
      [() => failing([], retryable()), () => failing([], retryable()), () => failing([], last)],
      2,
    )
    await expect(collect()).rejects.toBe(last)
    expect(started()).toBe(3)
  })

  it('never retries once an event was yielded', async () => {
    const error = retryable()
    const { collect, started, slept } = harness([() => failing(['partial'], error), () => succeeding(['again'])])
    await expect(collect()).rejects.toBe(error)
    expect(started()).toBe(1)
    expect(slept).toEqual([])
  })

  it('does not retry a non-retryable error', async () => {
    const error = fatal()
    const { collect, started } = harness([() => failing([], error), () => succeeding(['x'])])
    await expect(collect()).rejects.toBe(error)
    expect(started()).toBe(1)
  })

  it('returns the running attempt when the caller leaves the loop, so it can cancel upstream', async () => {
    let cleanedUp = false
    async function* attempt(): AsyncGenerator<string> {
      try {
        yield 'one'
        yield 'two'
      } finally {
        cleanedUp = true
      }
    }
    for await (const event of withRetries(attempt, { maxRetries: 2 })) {
      expect(event).toBe('one')
      break
    }
    expect(cleanedUp).toBe(true)
  })
})
