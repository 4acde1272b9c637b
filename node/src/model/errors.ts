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
