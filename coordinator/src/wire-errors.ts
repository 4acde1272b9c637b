import type { ErrorMessage, LullError } from '@lull/proto'

/** The wire form of an error, for the request it concerns. */
export function errorReply(error: LullError, requestId?: string): ErrorMessage {
  return {
    type: 'error',
    code: error.code,
    message: error.message,
    ...(requestId === undefined ? {} : { requestId }),
    ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
  }
}
