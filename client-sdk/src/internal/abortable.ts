import type { Stream } from '@libp2p/interface'
import { AbortError } from '../errors.js'

/**
 * The spare stream, or undefined if opening it failed. A request aborted (or timed out) meanwhile stops waiting at
 * once with an AbortError; the spare, if it opens later, is closed rather than leaked.
 */
export function untilSettledOrAborted(
  spare: Promise<Stream>,
  signal: AbortSignal | undefined,
): Promise<Stream | undefined> {
  const settled = spare.catch(() => undefined)
  if (signal === undefined) return settled
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      settled.then((stream) => stream?.abort(new Error('the request that was to use it was aborted')))
      reject(new AbortError())
    }
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    settled.then((stream) => {
      signal.removeEventListener('abort', onAbort)
      resolve(stream)
    })
  })
}

export function withTimeout(signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}
