import { type CoordinatorToClient, createRequestId, type SubmitMessage } from '@lull/proto'
import type { NodeEntry } from './registry.js'

/**
 * Where a job's messages to its client go: the client stream the request came on, which may carry the client's
 * other requests too.
 */
export interface ClientReplies {
  /** Sends without waiting; dropped when the stream has gone. */
  trySend(message: CoordinatorToClient): void
  /** The job is over: it is forgotten by its stream, which stays open for the client's other requests. */
  release(): void
}

/** A request the coordinator is routing. It never holds a key that opens `sealed`. */
export interface Job {
  /** The opaque id the node sees. */
  id: string
  clientRequestId: string
  /** Who asked, for fair sharing: the client connection's peer id (or, with accounts, the key's account). */
  clientId: string
  submit: SubmitMessage
  client: ClientReplies
  node: NodeEntry | undefined
  status: 'queued' | 'running' | 'finished'
  cancelled: boolean
  queueTimer: NodeJS.Timeout | undefined
  /** Time spent queued so far, over every stretch (the wait budget is spent across failovers, not restarted). */
  queuedMs: number
  /** When the current stretch in the queue began. */
  queuedSinceMs: number
  /** Ends the request with `deadline-exceeded` when the header's `timeoutMs` runs out. */
  deadlineTimer: NodeJS.Timeout | undefined
  /** When the current dispatch was made (its node's time to first token counts from here). */
  dispatchedAtMs: number
  submittedAtMs: number
  /** Dispatches so far (the first, plus one per failover). */
  attempts: number
  /** Nodes that lost or failed this request: it never goes back to them (their replay guard would refuse it). */
  failedNodes: Set<string>
  /** Sealed chunks relayed to the client. After the first, the request can no longer move to another node. */
  chunksRelayed: number
  /** The node's end arrived and its usage is being written: the client hears `end` once it is on disk. */
  settling?: boolean
  /** The answer's final sealed chunk, held back until the usage record is on disk (see `relayChunk`). */
  heldFinalChunk?: Uint8Array
}

/** A job for a request just submitted: queued, on no node yet, under a fresh id of the coordinator's own. */
export function newJob(client: ClientReplies, submit: SubmitMessage, clientId: string, nowMs: number): Job {
  return {
    id: createRequestId(),
    clientRequestId: submit.requestId,
    clientId,
    submit,
    client,
    node: undefined,
    status: 'queued',
    cancelled: false,
    queueTimer: undefined,
    queuedMs: 0,
    queuedSinceMs: nowMs,
    deadlineTimer: undefined,
    dispatchedAtMs: nowMs,
    submittedAtMs: nowMs,
    attempts: 0,
    failedNodes: new Set(),
    chunksRelayed: 0,
  }
}

/** Stops a job's timers (queue wait and deadline). */
export function clearJobTimers(job: Job): void {
  if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
  if (job.deadlineTimer !== undefined) clearTimeout(job.deadlineTimer)
  job.queueTimer = undefined
  job.deadlineTimer = undefined
}
