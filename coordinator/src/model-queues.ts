import { ErrorCode, LullError } from '@lull/proto'
import { OVERLOADED_RETRY_AFTER_MS } from './constants.js'
import { FairQueue } from './fair-queue.js'
import type { Job } from './job.js'

export interface ModelQueuesOptions {
  /** Requests that may wait per model; past it `push` refuses with `overloaded`. */
  maxPerModel: number
  /** How long a request may wait in all, over every stretch it spends queued. */
  timeoutMs: number
  /** A client's share of a saturated model's queue. @default () => 1 */
  clientWeight?: (clientId: string) => number
  /** A job's wait budget ran out: it is already out of its queue. */
  onExpired: (job: Job) => void
}

/**
 * The waiting requests, one fair queue per model (see FairQueue): by priority, then fairly between clients. Each
 * job waits at most its remaining budget; the time it spends queued is counted across stretches (a failover puts
 * it back without restarting the clock).
 */
export class ModelQueues {
  readonly #queues = new Map<string, FairQueue<Job>>()
  readonly #options: ModelQueuesOptions

  constructor(options: ModelQueuesOptions) {
    this.#options = options
  }

  /** Queues `job`, or returns the `overloaded` error to refuse it with when its model's queue is full. */
  push(job: Job): LullError | undefined {
    const model = job.submit.header.model
    let queue = this.#queues.get(model)
    if (queue === undefined) {
      const { clientWeight } = this.#options
      queue = new FairQueue<Job>(clientWeight === undefined ? {} : { clientWeight })
      this.#queues.set(model, queue)
    }
    if (queue.size >= this.#options.maxPerModel) {
      return new LullError(
        ErrorCode.Overloaded,
        `the network is saturated: ${queue.size} requests already wait for this model; retry after ${OVERLOADED_RETRY_AFTER_MS} ms`,
        { retryAfterMs: OVERLOADED_RETRY_AFTER_MS },
      )
    }
    queue.push(job, job.clientId, job.submit.header.priority)
    job.queuedSinceMs = Date.now()
    const budgetMs = Math.max(0, this.#options.timeoutMs - job.queuedMs)
    job.queueTimer = setTimeout(() => {
      this.remove(job)
      this.#options.onExpired(job)
    }, budgetMs)
    return undefined
  }

  /** Takes `job` out of its queue (served, cancelled or expired) and counts the time it waited. */
  remove(job: Job, served = false): void {
    const queue = this.#queues.get(job.submit.header.model)
    if (queue === undefined) return
    if (!(served ? queue.take(job) : queue.remove(job))) return
    job.queuedMs += Date.now() - job.queuedSinceMs
    if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    job.queueTimer = undefined
  }

  /** Whether `job` is waiting in its model's queue. */
  has(job: Job): boolean {
    return this.#queues.get(job.submit.header.model)?.has(job) ?? false
  }

  /** `modelId`'s waiting jobs in the order they should be served. */
  ordered(modelId: string): Iterable<Job> {
    return this.#queues.get(modelId)?.ordered() ?? []
  }

  depth(modelId: string): number {
    return this.#queues.get(modelId)?.size ?? 0
  }

  /** Every model that has (or had) a queue. */
  models(): Iterable<string> {
    return this.#queues.keys()
  }
}
