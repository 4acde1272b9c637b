import { ErrorCode, LullError } from '@lull/proto'

export {
  DecryptionError,
  ErrorCode,
  LullError,
  MalformedMessageError,
  NotARecipientError,
  RemoteError,
  StreamTruncatedError,
} from '@lull/proto'

/** The coordinator could not be reached or the connection to it broke. */
export class ConnectionError extends LullError {
  override name = 'ConnectionError'
  constructor(message: string, options: { cause?: unknown; requestId?: string } = {}) {
    super(ErrorCode.Internal, message, { ...options, isRetryable: true })
  }
}

/** No node in the catalogue serves the requested model (or none with a valid certificate). */
export class ModelNotFoundError extends LullError {
  override name = 'ModelNotFoundError'
  constructor(message: string) {
    super(ErrorCode.ModelNotFound, message)
  }
}

/** The caller aborted the request through its `signal` or by leaving the event loop. */
export class AbortError extends LullError {
  override name = 'AbortError'
  constructor(message = 'the request was aborted', options: { requestId?: string } = {}) {
    super(ErrorCode.Cancelled, message, options)
  }
}

/** The request's `timeoutMs` passed before the answer ended; the request was cancelled upstream. */
export class TimeoutError extends LullError {
  override name = 'TimeoutError'
  constructor(message: string, options: { requestId?: string } = {}) {
    super(ErrorCode.Timeout, message, { ...options, isRetryable: false })
  }
}

/**
 * An answer's node was lost after part of the answer was yielded, and it could not be resumed: resumes used up, or
 * no other candidate serves the model. `partialText` is what the caller already received.
 */
export class ResumeFailedError extends LullError {
  override name = 'ResumeFailedError'
  readonly partialText: string
  /**
   * `isRetryable` says whether asking again may work, as its cause does: a node lost and none free to take over is
   * a passing state of the network. The app already has `partialText`; a new request starts a new answer.
   */
  constructor(message: string, options: { cause?: unknown; requestId?: string; partialText: string }) {
    const { partialText, ...rest } = options
    super(ErrorCode.NodeLost, message, {
      ...rest,
      isRetryable: options.cause instanceof LullError && options.cause.isRetryable,
    })
    this.partialText = partialText
  }
}
