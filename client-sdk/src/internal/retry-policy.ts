/**
 * When and how long to wait before retrying a request, after openai-node: exponential backoff from
 * {@link INITIAL_RETRY_DELAY_MS} doubling up to {@link MAX_RETRY_DELAY_MS}, minus up to 25 % jitter, or the
 * server's retry-after hint when the error carries one. Pure functions: the clock and randomness are injected.
 */

/** First backoff delay. */
export const INITIAL_RETRY_DELAY_MS = 500
/** Longest backoff delay. */
export const MAX_RETRY_DELAY_MS = 8_000
/** A retry-after hint longer than this is not honoured by waiting: the error is returned instead. */
export const MAX_RETRY_AFTER_MS = 60_000
/** @default 2, as openai-node. */
export const DEFAULT_MAX_RETRIES = 2

/** What the retry decision needs to know about a failed attempt. */
export interface FailedAttempt {
  error: unknown
  /** Retries already made (0 after the first attempt failed). */
  retriesSoFar: number
  maxRetries: number
  /** Whether any text of the answer already reached the caller: then a retry would duplicate it. */
  textYielded: boolean
}

/** Whether the error says trying again could help (`isRetryable` on Lull errors). */
export function isRetryableError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { isRetryable?: unknown }).isRetryable === true
}

/** A server hint, in ms, carried by the error as `retryAfterMs`; undefined when absent or nonsensical. */
export function retryAfterHintMs(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const hint = (error as { retryAfterMs?: unknown }).retryAfterMs
  return typeof hint === 'number' && Number.isFinite(hint) && hint >= 0 ? hint : undefined
}

/**
 * The delay before the next attempt, or `undefined` when the request must not be retried: retries used up, the
 * error is not retryable, text was already yielded, or the server asked for a longer wait than
 * {@link MAX_RETRY_AFTER_MS}.
 */
export function nextRetryDelayMs(attempt: FailedAttempt, random: () => number = Math.random): number | undefined {
  if (attempt.textYielded || attempt.retriesSoFar >= attempt.maxRetries || !isRetryableError(attempt.error)) {
    return undefined
  }
  const hint = retryAfterHintMs(attempt.error)
  if (hint !== undefined) return hint <= MAX_RETRY_AFTER_MS ? hint : undefined
  const base = Math.min(INITIAL_RETRY_DELAY_MS * 2 ** attempt.retriesSoFar, MAX_RETRY_DELAY_MS)
  const jitter = 1 - Math.min(Math.max(random(), 0), 1) * 0.25
  return Math.round(base * jitter)
}

/** Resolves after `ms`, or rejects with `signal.reason` as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Reported before each retry: which retry, how long it waits, and the error that caused it. */
export interface RetryInfo {
  /** 1 for the first retry. */
  retry: number
  delayMs: number
  error: unknown
}

export interface RetryLoopOptions {
  maxRetries: number
  signal?: AbortSignal | undefined
  /** @default Math.random */
  random?: () => number
  /** Injected for tests. @default {@link sleep} */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  /** Called before waiting for each retry. */
  onRetry?: ((info: RetryInfo) => void) | undefined
}

/**
 * Yields the events of `attempt()`, starting a fresh attempt after a retryable failure that happened before the
 * first event. Once an event has been yielded, a failure is thrown as is: retrying would repeat text.
 * Leaving the loop early returns the current attempt, so its cleanup (cancelling upstream) runs.
 */
export async function* withRetries<T>(attempt: () => AsyncIterable<T>, options: RetryLoopOptions): AsyncGenerator<T> {
  const wait = options.sleep ?? sleep
  for (let retriesSoFar = 0; ; retriesSoFar++) {
    let yielded = false
    try {
      for await (const event of attempt()) {
        yielded = true
        yield event
      }
      return
    } catch (error) {
      if (options.signal?.aborted) throw error
      const delayMs = nextRetryDelayMs(
        { error, retriesSoFar, maxRetries: options.maxRetries, textYielded: yielded },
        options.random,
      )
      if (delayMs === undefined) throw error
      options.onRetry?.({ retry: retriesSoFar + 1, delayMs, error })
      await wait(delayMs, options.signal)
    }
  }
}
