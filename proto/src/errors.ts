/**
 * Errors shared by every Lull component. Each class has a stable `name`; errors that cross the wire carry a
 * stable `code` from {@link ErrorCode} and say whether retrying could help (`isRetryable`).
 */

/** Every error code that may appear on the wire. Defined once, here. */
export const ErrorCode = {
  /** A frame or message failed to decode or failed its schema. */
  MalformedMessage: 'malformed-message',
  /** A frame exceeded the maximum size and was not decoded. */
  FrameTooLarge: 'frame-too-large',
  /** A message type this peer does not accept on this protocol. */
  UnexpectedMessage: 'unexpected-message',
  /** Sealed data failed authentication (tampered, wrong key, reordered). */
  DecryptionFailed: 'decryption-failed',
  /** A request was not sealed for this node. */
  NotARecipient: 'not-a-recipient',
  /** This node has already run a request with this nonce: a replay. */
  Replayed: 'replayed',
  /** The request's sealed timestamp is outside the node's acceptance window (too old, or from the future). */
  RequestExpired: 'request-expired',
  /** A response stream ended without its final chunk. */
  StreamTruncated: 'stream-truncated',
  /** No node serving the requested model is registered. */
  ModelNotFound: 'model-not-found',
  /** The model's queue is full: the network is saturated. Carries `retryAfterMs`. */
  Overloaded: 'overloaded',
  /** None of the request's candidate nodes can take it now. */
  NoCapacity: 'no-capacity',
  /** The node running the request went away. */
  NodeLost: 'node-lost',
  /** The request was cancelled. */
  Cancelled: 'cancelled',
  /** A deadline passed. */
  Timeout: 'timeout',
  /** Request parameters were invalid. */
  InvalidRequest: 'invalid-request',
  /** A node certificate failed verification. */
  InvalidCertificate: 'invalid-certificate',
  /** The node failed while generating. */
  EngineFailed: 'engine-failed',
  /** Something unexpected failed inside the remote peer. */
  Internal: 'internal',
  /** The request's deadline passed before it could finish; it was not (or no longer) run. */
  DeadlineExceeded: 'deadline-exceeded',
  /** No valid API key (client, admin) or join token (node) was presented: missing, unknown or revoked. */
  Unauthorized: 'unauthorized',
  /** The key is valid but may not do this (e.g. the admin view without the admin role). */
  Forbidden: 'forbidden',
  /** The key's request rate is over its limit. Carries `retryAfterMs`. */
  RateLimited: 'rate-limited',
  /** The key's token quota for the current period is used up. Carries `retryAfterMs` (when the period renews). */
  QuotaExceeded: 'quota-exceeded',
  /** The account's credit balance cannot cover the request; nothing was dispatched. */
  InsufficientCredits: 'insufficient-credits',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.Overloaded,
  ErrorCode.NoCapacity,
  ErrorCode.NodeLost,
  ErrorCode.Timeout,
  ErrorCode.EngineFailed,
  ErrorCode.Internal,
  ErrorCode.RateLimited,
])

export function isRetryableCode(code: ErrorCode): boolean {
  return RETRYABLE_CODES.has(code)
}

const ALL_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode))
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && ALL_CODES.has(value)
}

export interface LullErrorOptions {
  cause?: unknown
  requestId?: string
  isRetryable?: boolean
  /** How long the sender suggests waiting before a retry. */
  retryAfterMs?: number
}

/** Base class of every Lull error. */
export class LullError extends Error {
  override name = 'LullError'
  readonly code: ErrorCode
  readonly isRetryable: boolean
  readonly requestId: string | undefined
  /** How long the sender suggests waiting before a retry, when it said. */
  readonly retryAfterMs: number | undefined

  constructor(code: ErrorCode, message: string, options: LullErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.isRetryable = options.isRetryable ?? isRetryableCode(code)
    this.requestId = options.requestId
    this.retryAfterMs = options.retryAfterMs
  }
}

/** Input from the network (or a file) that is not a valid Lull message. */
export class MalformedMessageError extends LullError {
  override name = 'MalformedMessageError'
  constructor(message: string, options?: LullErrorOptions) {
    super(ErrorCode.MalformedMessage, message, options)
  }
}

/** A length prefix announced a frame larger than the limit; nothing was decoded. */
export class FrameTooLargeError extends LullError {
  override name = 'FrameTooLargeError'
  constructor(
    readonly sizeBytes: number,
    readonly limitBytes: number,
  ) {
    super(ErrorCode.FrameTooLarge, `frame of ${sizeBytes} bytes exceeds the ${limitBytes}-byte limit`)
  }
}

/** Sealed data could not be opened: tampered with, reordered, or sealed under another key. */
export class DecryptionError extends LullError {
  override name = 'DecryptionError'
  constructor(message = 'sealed data failed authentication', options?: LullErrorOptions) {
    super(ErrorCode.DecryptionFailed, message, options)
  }
}

/** A sealed request carries no key wrapped for this node. */
export class NotARecipientError extends LullError {
  override name = 'NotARecipientError'
  constructor(message = 'the request was not sealed for this node', options?: LullErrorOptions) {
    super(ErrorCode.NotARecipient, message, options)
  }
}

/** A sealed response stream ended before its final chunk: the answer is incomplete. */
export class StreamTruncatedError extends LullError {
  override name = 'StreamTruncatedError'
  constructor(message = 'the response stream ended before its final chunk', options?: LullErrorOptions) {
    super(ErrorCode.StreamTruncated, message, options)
  }
}

/** An error reported by a remote peer, rebuilt from its wire form. */
export class RemoteError extends LullError {
  override name = 'RemoteError'
}

/** Rebuilds a typed error from a wire error message. */
export function errorFromWire(code: ErrorCode, message: string, requestId?: string, retryAfterMs?: number): LullError {
  const options: LullErrorOptions = {
    ...(requestId === undefined ? {} : { requestId }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  }
  switch (code) {
    case ErrorCode.MalformedMessage:
      return new MalformedMessageError(message, options)
    case ErrorCode.DecryptionFailed:
      return new DecryptionError(message, options)
    case ErrorCode.NotARecipient:
      return new NotARecipientError(message, options)
    case ErrorCode.StreamTruncated:
      return new StreamTruncatedError(message, options)
    default:
      return new RemoteError(code, message, options)
  }
}
