import { type DispatchMessage, MAX_DISPATCH_BATCH_BYTES, MAX_DISPATCH_BATCH_REQUESTS } from '@lull/proto'
import { DISPATCH_BATCH_WINDOW_MS } from './constants.js'
import type { NodeEntry } from './registry.js'

/** What one dispatch carries: the opaque request id the node sees, the clear header and the sealed body. */
export type DispatchEntry = Omit<DispatchMessage, 'type'>

export interface DispatchBatcherComponents<J> {
  /** The entry to send for `job`, or undefined if it is no longer bound for `node` (failed over, finished). */
  entryOf(job: J, node: NodeEntry): DispatchEntry | undefined
  /** The node's link refused the message: these jobs never reached `node`. */
  onSendFailed(jobs: J[], node: NodeEntry): void
  /** These jobs left for `node` (after the message is written, so the node hears first). */
  onSent(jobs: J[], node: NodeEntry): void
}

export interface DispatchBatcherOptions {
  /**
   * How long dispatches to one node are collected before they go out together; 0 sends them on the next turn of
   * the event loop, batching what was placed in the same turn.
   * @default DISPATCH_BATCH_WINDOW_MS (0)
   */
  windowMs?: number
}

/**
 * Collects dispatches bound for the same node within a short window and sends them as one `dispatch-batch`
 * message (a lone dispatch goes as a plain `dispatch`). Batches are bounded by request count and sealed bytes
 * (see MAX_DISPATCH_BATCH_REQUESTS, MAX_DISPATCH_BATCH_BYTES); more pending than that go in several messages.
 */
export class DispatchBatcher<J> {
  readonly #components: DispatchBatcherComponents<J>
  readonly #windowMs: number
  readonly #pending = new Map<NodeEntry, J[]>()
  #scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined
  /** Messages sent so far, by kind: for the operator and the benchmark. */
  readonly sent = { dispatch: 0, batches: 0, batchedRequests: 0 }

  constructor(components: DispatchBatcherComponents<J>, options: DispatchBatcherOptions = {}) {
    this.#components = components
    this.#windowMs = options.windowMs ?? DISPATCH_BATCH_WINDOW_MS
  }

  /** Queues `job` for `node`; it goes out at the end of the window. */
  add(node: NodeEntry, job: J): void {
    const list = this.#pending.get(node)
    if (list === undefined) this.#pending.set(node, [job])
    else list.push(job)
    if (this.#scheduled === undefined) {
      this.#scheduled =
        this.#windowMs > 0 ? setTimeout(() => this.flush(), this.#windowMs) : setImmediate(() => this.flush())
    }
  }

  /** Takes `job` back if it has not been sent yet; returns whether it was still pending. */
  withdraw(node: NodeEntry, job: J): boolean {
    const list = this.#pending.get(node)
    const index = list?.indexOf(job) ?? -1
    if (list === undefined || index < 0) return false
    list.splice(index, 1)
    if (list.length === 0) this.#pending.delete(node)
    return true
  }

  /** Sends everything pending now. */
  flush(): void {
    if (this.#scheduled !== undefined) {
      clearTimeout(this.#scheduled as NodeJS.Timeout)
      clearImmediate(this.#scheduled as NodeJS.Immediate)
      this.#scheduled = undefined
    }
    const pending = [...this.#pending]
    this.#pending.clear()
    for (const [node, jobs] of pending) this.#sendTo(node, jobs)
  }

  /** Drops everything pending (the coordinator is stopping). */
  stop(): void {
    this.#pending.clear()
    this.flush()
  }

  #sendTo(node: NodeEntry, jobs: J[]): void {
    let group: { jobs: J[]; entries: DispatchEntry[]; bytes: number } = { jobs: [], entries: [], bytes: 0 }
    const groups = [group]
    for (const job of jobs) {
      const entry = this.#components.entryOf(job, node)
      if (entry === undefined) continue
      const bytes = entry.sealed.ciphertext.byteLength
      if (
        group.entries.length > 0 &&
        (group.entries.length >= MAX_DISPATCH_BATCH_REQUESTS || group.bytes + bytes > MAX_DISPATCH_BATCH_BYTES)
      ) {
        group = { jobs: [], entries: [], bytes: 0 }
        groups.push(group)
      }
      group.jobs.push(job)
      group.entries.push(entry)
      group.bytes += bytes
    }
    for (const { jobs: groupJobs, entries } of groups) {
      const [only] = entries
      if (only === undefined) continue
      let sent: boolean
      if (entries.length === 1) {
        const message: DispatchMessage = { type: 'dispatch', ...only }
        sent = node.channel.trySend(message)
        if (sent) this.sent.dispatch++
      } else {
        sent = node.channel.trySend({ type: 'dispatch-batch', requests: entries })
        if (sent) {
          this.sent.batches++
          this.sent.batchedRequests += entries.length
        }
      }
      if (!sent) this.#components.onSendFailed(groupJobs, node)
      else this.#components.onSent(groupJobs, node)
    }
  }
}
