import type {
  Benchmark,
  CatalogueMessage,
  CoordinatorToNode,
  MessageChannel,
  NODE_TO_COORDINATOR,
  NodeCertificate,
  NodeState,
} from '@lull/proto'
import { RecentRate } from './recent-rate.js'

export type NodeChannel = MessageChannel<typeof NODE_TO_COORDINATOR, CoordinatorToNode>

/** A registered node, as the coordinator knows it. */
export interface NodeEntry {
  nodeId: string
  modelId: string
  certificate: NodeCertificate
  slots: number
  /** Requests dispatched to the node and not yet ended: the coordinator's own count. */
  inFlight: number
  benchmark: Benchmark
  state: NodeState
  /** Why the node is not serving, as its last heartbeat said (e.g. "user active"). */
  stateReason?: string | undefined
  lastSeenMs: number
  registeredAtMs: number
  channel: NodeChannel
  /** Busy slots as the node's last heartbeat reported them; absent before the first heartbeat. */
  reportedBusySlots?: number | undefined
  /** When that heartbeat arrived (epoch ms). */
  reportedAtMs?: number | undefined
  /** Free memory and one-minute load average of the node's machine, from its last heartbeat (for the operator). */
  ramFreeBytes?: number | undefined
  loadAverage?: number | undefined
  /** When the coordinator last dispatched to or finished a request on this node (epoch ms): a heartbeat older than
   * this describes load the coordinator already accounts for. */
  lastAssignmentChangeMs?: number | undefined
}

/** What the coordinator counted for a node. Kept by node id, so the counts survive the node reconnecting. */
export interface NodeCounters {
  /** Requests the node answered to the end. */
  requestsServed: number
  /** Requests that failed on the node: an error it reported, or its link lost while running them. */
  errors: number
  /** Of those, the ones moved to another node before their first token. */
  failovers: number
  /** Recent time from dispatch to the first relayed chunk, as an exponentially weighted moving average; absent
   * before the first sample. */
  ttftEwmaMs?: number | undefined
  /** Output tokens of the requests it answered to the end, as the node counted (and signed) them. */
  outputTokensServed: number
  /** The same tokens over the last minute, per second. */
  recentTokens: RecentRate
}

/** Weight of the newest sample in a node's TTFT moving average. */
export const TTFT_EWMA_WEIGHT = 0.2

/** Folds a time-to-first-token sample into a node's counters. */
export function recordNodeTtft(counters: NodeCounters, ms: number): void {
  counters.ttftEwmaMs =
    counters.ttftEwmaMs === undefined ? ms : counters.ttftEwmaMs + TTFT_EWMA_WEIGHT * (ms - counters.ttftEwmaMs)
}

/** Most node ids whose counters are kept; the oldest are forgotten beyond it. */
const MAX_COUNTED_NODES = 10_000

/** The nodes currently registered, by id and by model, and the coordinator's counters for each. */
export class Registry {
  private readonly nodes = new Map<string, NodeEntry>()
  private readonly counters = new Map<string, NodeCounters>()

  get size(): number {
    return this.nodes.size
  }

  get(nodeId: string): NodeEntry | undefined {
    return this.nodes.get(nodeId)
  }

  /** Adds a node; returns the entry it replaced (the same node, reconnected), if any. */
  add(entry: NodeEntry): NodeEntry | undefined {
    const previous = this.nodes.get(entry.nodeId)
    this.nodes.set(entry.nodeId, entry)
    return previous
  }

  /** Removes `entry` if it is still the registered one for its node id. */
  remove(entry: NodeEntry): boolean {
    if (this.nodes.get(entry.nodeId) !== entry) return false
    this.nodes.delete(entry.nodeId)
    return true
  }

  /** The counters for `nodeId`, created at zero on first use. */
  countersOf(nodeId: string): NodeCounters {
    let counters = this.counters.get(nodeId)
    if (counters === undefined) {
      counters = { requestsServed: 0, errors: 0, failovers: 0, outputTokensServed: 0, recentTokens: new RecentRate() }
      this.counters.set(nodeId, counters)
      if (this.counters.size > MAX_COUNTED_NODES) {
        for (const id of this.counters.keys()) {
          if (this.counters.size <= MAX_COUNTED_NODES) break
          if (!this.nodes.has(id)) this.counters.delete(id)
        }
      }
    }
    return counters
  }

  all(): IterableIterator<NodeEntry> {
    return this.nodes.values()
  }

  /** Whether some serving node of `modelId` has a slot the coordinator has not filled. */
  hasFreeSlot(modelId: string): boolean {
    for (const node of this.nodes.values()) {
      if (node.modelId === modelId && node.state === 'serving' && node.inFlight < node.slots) return true
    }
    return false
  }

  servesModel(modelId: string): boolean {
    for (const node of this.nodes.values()) if (node.modelId === modelId) return true
    return false
  }

  catalogue(): CatalogueMessage {
    const byModel = new Map<string, CatalogueMessage['models'][number]['nodes']>()
    for (const node of this.nodes.values()) {
      const list = byModel.get(node.modelId) ?? []
      list.push({
        nodeId: node.nodeId,
        certificate: node.certificate,
        slots: node.slots,
        busySlots: Math.min(node.inFlight, node.slots),
        benchmark: node.benchmark,
      })
      byModel.set(node.modelId, list)
    }
    return {
      type: 'catalogue',
      models: [...byModel].map(([modelId, nodes]) => ({ modelId, nodes })),
    }
  }
}
