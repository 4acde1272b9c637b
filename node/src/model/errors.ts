/** Why a model file was refused; see {@link ModelRejectedError}. */
export type ModelRejectionReason =
  /** The path does not exist. */
  | 'not-found'
  /** The path is a directory or something else that is not a regular file. */
  | 'not-a-file'
  /** The file does not start with the GGUF magic. */
  | 'not-gguf'
  /** A GGUF version llama.cpp does not read (1, or newer than 3), or a big-endian file. */
  | 'unsupported-version'
  /** The GGUF structure is impossible: counts or lengths the file cannot hold, unknown types, bad alignment. */
  | 'malformed'
  /** The file ends before the data its header describes. */
  | 'truncated'
  /** Metadata that llama.cpp needs (and may abort the process without) is absent. */
  | 'missing-metadata'
  /** Metadata is present but has the wrong type or an impossible value. */
  | 'invalid-metadata'
  /** The file's SHA-256 differs from the digest the operator asked for. */
  | 'digest-mismatch'
  /** The file's SHA-256 differs from the digest pinned for this path on an earlier start. */
  | 'changed-since-pinned'
  /** The file changed while it was being read. */
  | 'changed-while-reading'
  /** The expected digest given by the operator is not 64 hex characters. */
  | 'invalid-expected-digest'
  /** The pins file in the data directory cannot be read. */
  | 'invalid-pins-file'
  /** The trial load in a separate process reported an error (llama.cpp refused the file). */
  | 'trial-load-failed'
  /** The trial-load process died (abort, segfault, out of memory): loading in the node would have killed it. */
  | 'trial-load-crashed'
  /** The trial-load process did not finish in time. */
  | 'trial-load-timeout'
  /** The model and its context would need more memory than is free (see {@link InsufficientMemoryError}). */
  | 'insufficient-memory'

/**
 * A model file was refused before the node loaded it. `reason` says which check failed; the message says what is
 * wrong and what to do about it. The node process is unaffected: nothing of the file was loaded into it.
 */
export class ModelRejectedError extends Error {
  readonly code = 'model_rejected'

  constructor(
    readonly reason: ModelRejectionReason,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ModelRejectedError'
  }
}

/** Why a model download failed; see {@link ModelDownloadError}. */
export type ModelDownloadFailure =
  /** The model URI cannot be parsed. */
  | 'invalid-uri'
  /** The server could not be reached at all (offline, DNS, firewall). */
  | 'unreachable'
  /** The server has no such file or tag. */
  | 'not-found'
  /** The server answered with another error status. */
  | 'http-error'
  /** The transfer stopped part way; what arrived is kept and the next pull resumes from there. */
  | 'interrupted'
  /** A model split over several GGUF files, which the node does not download yet. */
  | 'unsupported'
  /** Another process is downloading the same model into the same data dir. */
  | 'busy'

/** A model could not be downloaded. The message says what happened and what to do next. */
export class ModelDownloadError extends Error {
  readonly code = 'model_download_failed'

  constructor(
    readonly reason: ModelDownloadFailure,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ModelDownloadError'
  }
}

/** What would fit instead, when a model does not fit in memory. */
export interface MemoryFitSuggestion {
  /** The most slots that fit with the requested context size, if at least one does. */
  slots?: number
  /** The largest context size (tokens per slot, a power of two) that fits with the requested slots, if any. */
  contextSize?: number
  /** The largest model file (bytes) that would fit with one slot and the smallest context. */
  modelBytes: number
}

/**
 * The model would not fit in the memory this machine has free: loading it would swap or be killed. The message says
 * how much it needs, how much is free, and what would fit.
 */
export class InsufficientMemoryError extends ModelRejectedError {
  constructor(
    readonly requiredBytes: number,
    readonly availableBytes: number,
    readonly suggestion: MemoryFitSuggestion,
    message: string,
  ) {
    super('insufficient-memory', message)
    this.name = 'InsufficientMemoryError'
  }
}
