/**
 * Lull errors as OpenAI API errors: an HTTP status, and a body `{ error: { message, type, code, param } }`.
 * Statuses are chosen so that OpenAI clients react as they should: their retry rules retry 408, 409, 429 and
 * 5xx, and honour `Retry-After`.
 */
import { ErrorCode, LullError } from '@lull/proto'
import { InvalidRequestParameterError } from './openai-request.js'

/** Suggested wait for capacity errors when the error carries no hint of its own. */
export const DEFAULT_RETRY_AFTER_SECONDS = 1

export interface OpenAIErrorBody {
  error: { message: string; type: string; code: string | null; param: string | null }
}

export interface HttpError {
  status: number
  body: OpenAIErrorBody
  /** Seconds, for the `Retry-After` header. */
  retryAfterSeconds?: number
}

export function httpError(
  status: number,
  type: string,
  code: string | null,
  message: string,
  param: string | null = null,
): HttpError {
  return { status, body: { error: { message, type, code, param } } }
}

/** The HTTP status and OpenAI error body for any error a request raised. */
export function httpErrorFrom(error: unknown): HttpError {
  if (error instanceof InvalidRequestParameterError) {
    return httpError(400, 'invalid_request_error', error.code, error.message, error.param)
  }
  if (!(error instanceof LullError)) {
    return httpError(500, 'server_error', 'internal', `the proxy failed: ${(error as Error)?.message ?? error}`)
  }
  const code = error.code.replaceAll('-', '_')
  switch (error.code) {
    case ErrorCode.ModelNotFound:
      return httpError(404, 'invalid_request_error', 'model_not_found', error.message, 'model')
    case ErrorCode.InvalidRequest:
      return httpError(400, 'invalid_request_error', code, error.message)
    case ErrorCode.Overloaded:
    case ErrorCode.NoCapacity: {
      const hintMs = error.retryAfterMs
      const retryAfterSeconds =
        typeof hintMs === 'number' && Number.isFinite(hintMs) && hintMs >= 0
          ? Math.ceil(hintMs / 1000)
          : DEFAULT_RETRY_AFTER_SECONDS
      return { ...httpError(503, 'server_error', code, error.message), retryAfterSeconds }
    }
    case ErrorCode.Unauthorized:
      return httpError(401, 'authentication_error', code, error.message)
    case ErrorCode.Forbidden:
      return httpError(403, 'permission_error', code, error.message)
    case ErrorCode.InsufficientCredits:
      return httpError(402, 'insufficient_quota', code, error.message)
    case ErrorCode.RateLimited:
    case ErrorCode.QuotaExceeded: {
      const hintMs = error.retryAfterMs
      const retryAfterSeconds =
        typeof hintMs === 'number' && Number.isFinite(hintMs) && hintMs >= 0
          ? Math.ceil(hintMs / 1000)
          : DEFAULT_RETRY_AFTER_SECONDS
      return {
        ...httpError(
          429,
          error.code === ErrorCode.RateLimited ? 'rate_limit_error' : 'insufficient_quota',
          code,
          error.message,
        ),
        retryAfterSeconds,
      }
    }
    case ErrorCode.Timeout:
      return httpError(504, 'server_error', code, error.message)
    case ErrorCode.Cancelled:
      // Only seen when the caller went away; nobody reads this, but say something true.
      return httpError(499, 'invalid_request_error', code, error.message)
    case ErrorCode.Internal:
      // A ConnectionError (coordinator unreachable) or a remote internal failure: the upstream failed.
      return httpError(
        502,
        'server_error',
        error.name === 'ConnectionError' ? 'coordinator_unreachable' : code,
        error.message,
      )
    default:
      // node-lost, engine-failed, decryption-failed, stream-truncated, invalid-certificate, replayed, …:
      // the network upstream of this proxy failed to produce a trustworthy answer.
      return httpError(502, 'server_error', code, error.message)
  }
}
