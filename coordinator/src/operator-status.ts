import type { StatusMessage } from '@lull/proto'
import { type NetworkStats, roundTenths } from './network-stats.js'
import type { Registry } from './registry.js'

export interface OperatorStatusSources {
  coordinatorId: string
  registry: Registry
  stats: NetworkStats
  /** Models with a queue, and how deep each is. */
  queues: { models(): Iterable<string>; depth(modelId: string): number }
}

/** The operator's view: every node and network totals. Ids, counters and times only; never a payload. */
export function operatorStatus(
  { coordinatorId, registry, stats, queues }: OperatorStatusSources,
  nowMs = Date.now(),
): StatusMessage {
  const nodes: StatusMessage['nodes'] = []
  let slots = 0
  let busySlots = 0
  let servingNodes = 0
  for (const node of registry.all()) {
    const counters = registry.countersOf(node.nodeId)
    nodes.push({
      nodeId: node.nodeId,
      modelId: node.modelId,
      hardware: node.certificate.hardware,
      benchmark: node.benchmark,
      state: node.state,
      ...(node.stateReason === undefined ? {} : { stateReason: node.stateReason }),
      slots: node.slots,
      busySlots: node.inFlight,
      requestsServed: counters.requestsServed,
      errors: counters.errors,
      failovers: counters.failovers,
      ...(counters.ttftEwmaMs === undefined ? {} : { ttftMs: Math.round(counters.ttftEwmaMs * 10) / 10 }),
      recentTokensPerSecond: roundTenths(counters.recentTokens.perSecond(nowMs)),
      outputTokensServed: counters.outputTokensServed,
      ...(node.ramFreeBytes === undefined ? {} : { ramFreeBytes: node.ramFreeBytes }),
      ...(node.loadAverage === undefined ? {} : { loadAverage: node.loadAverage }),
      lastSeenMs: node.lastSeenMs,
      registeredAtMs: node.registeredAtMs,
    })
    slots += node.slots
    busySlots += node.inFlight
    if (node.state === 'serving') servingNodes++
  }
  const models = new Set([...nodes.map((node) => node.modelId), ...queues.models()])
  return {
    type: 'status',
    nowMs,
    coordinatorId,
    nodes,
    totals: {
      nodes: nodes.length,
      servingNodes,
      slots,
      busySlots,
      queued: [...models].map((modelId) => ({ modelId, depth: queues.depth(modelId) })),
      ...stats.totals(nowMs),
    },
  }
}
