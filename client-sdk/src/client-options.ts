/** What a client is configured with, and what each request may ask for. */
import type { ChatMessage } from '@lull/proto'
import type { RetryInfo } from './internal/retry-policy.js'

export interface LullClientOptions {
  /** The coordinator's multiaddr, ending in `/p2p/<peer id>`. */
  coordinator: string
  /** The API key the coordinator knows this client by (`lull_sk_…`); coordinators in open mode need none. */
  apiKey?: string
  /**
   * How many nodes each request is sealed for.
   * @default 3
   */
  candidates?: number
  /**
   * Pin the nodes this client will seal to, by node id (libp2p peer id). Requests are sealed only for these;
   * every other node is refused, whatever the catalogue says.
   */
  trustedNodes?: readonly string[]
  /**
   * How long a fetched catalogue is reused before requests fetch it again.
   * @default 2000
   */
  catalogueMaxAgeMs?: number
  /**
   * Bound on connecting and on each catalogue fetch.
   * @default 10000
   */
  timeoutMs?: number
  /**
   * Retries of a request that fails retryably (`isRetryable`) before its first token, with exponential backoff and
   * jitter, or after the retry-after hint an error carries. Each retry fetches the catalogue again and seals anew.
   * @default 2
   */
  maxRetries?: number
  /** Called before each retry: for logging. */
  onRetry?: (info: RetryInfo) => void
  /**
   * Resumes of an answer whose node is lost (`node-lost`) after text was already yielded: the answer is continued
   * on another candidate (the lost node excluded), sealed anew with the text received so far as a trailing assistant
   * message, and only the new text is yielded. 0 turns resuming off (the `node-lost` error is thrown as is).
   * @default 2
   */
  maxResumes?: number
}

export interface ChatOptions {
  model: string
  messages: ChatMessage[]
  /** @default 256 */
  maxTokens?: number
  /** 0 = greedy. @default 0.8 */
  temperature?: number
  topP?: number
  topK?: number
  seed?: number
  stop?: string[]
  signal?: AbortSignal
  /** Overrides the client's `maxRetries` for this request. */
  maxRetries?: number
  /** Overrides the client's `maxResumes` for this request. */
  maxResumes?: number
  /**
   * Deadline for the whole request in ms, retries included. When it passes, the request is cancelled upstream and
   * fails with `TimeoutError`. The coordinator is told it too (in the sealed-bound header), so a request still
   * queued when it passes is dropped there and never runs. No deadline when omitted.
   */
  timeoutMs?: number
  /** 0 (lowest) to 9 (highest): when the network is saturated, higher priorities are served first. @default 0 */
  priority?: number
  /**
   * Called each time the request is dispatched to a node: once, or again after a failover or a resume. For logging
   * or display of which node serves the answer; the text events are unaffected.
   */
  onDispatched?: (info: DispatchedInfo) => void
}

/** Which node a request was dispatched to. */
export interface DispatchedInfo {
  /** The node (libp2p peer id) that runs the request. */
  nodeId: string
  requestId: string
}

/** A plain-text prompt, sent as a single user message (no chat template of its own). */
export interface CompleteOptions extends Omit<ChatOptions, 'messages'> {
  prompt: string
}

/** How long a fetched catalogue is reused. */
export const DEFAULT_CATALOGUE_MAX_AGE_MS = 2_000
export const DEFAULT_MAX_TOKENS = 256
export const DEFAULT_MAX_RESUMES = 2
