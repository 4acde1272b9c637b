import type { Decision } from '@lull/proto'

/** Requests whose decisions are remembered; the oldest are forgotten beyond it. */
export const MAX_EXPLAINED_REQUESTS = 1_000
/** Decisions remembered per request. */
const MAX_DECISIONS_PER_REQUEST = 32
const MAX_REASON_CHARS = 512

export interface RequestDecisions {
  /** The client's id for the request. */
  requestId: string
  /** The coordinator's id for it (what nodes see). */
  nodeRequestId: string
  model: string
  decisions: Decision[]
}

/**
 * A bounded in-memory log of recent scheduling decisions, each with its reason, for `lull-coordinator explain`.
 * Holds ids, node ids, model ids and reasons only: never a payload.
 */
export class DecisionLog {
  readonly #byNodeRequestId = new Map<string, RequestDecisions>()
  readonly #byClientRequestId = new Map<string, RequestDecisions>()
  readonly #capacity: number

  constructor(capacity = MAX_EXPLAINED_REQUESTS) {
    this.#capacity = capacity
  }

  record(
    ids: { requestId: string; nodeRequestId: string; model: string },
    event: string,
    reason: string,
    nodeId?: string,
  ): void {
    let entry = this.#byNodeRequestId.get(ids.nodeRequestId)
    if (entry === undefined) {
      entry = { ...ids, decisions: [] }
      this.#byNodeRequestId.set(ids.nodeRequestId, entry)
      this.#byClientRequestId.set(ids.requestId, entry)
      while (this.#byNodeRequestId.size > this.#capacity) {
        const oldest = this.#byNodeRequestId.values().next().value
        if (oldest === undefined) break
        this.#byNodeRequestId.delete(oldest.nodeRequestId)
        if (this.#byClientRequestId.get(oldest.requestId) === oldest) this.#byClientRequestId.delete(oldest.requestId)
      }
    }
    if (entry.decisions.length >= MAX_DECISIONS_PER_REQUEST) return
    entry.decisions.push({
      atMs: Date.now(),
      event,
      reason: reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS - 1)}…` : reason,
      ...(nodeId === undefined ? {} : { nodeId }),
    })
  }

  /** The decisions for a request, by the client's id or the coordinator's. */
  explain(requestId: string): RequestDecisions | undefined {
    return this.#byClientRequestId.get(requestId) ?? this.#byNodeRequestId.get(requestId)
  }
}
