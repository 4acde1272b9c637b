import { ErrorCode, LullError, type RequestHeader } from '@lull/proto'
import type { NodeEntry, Registry } from './registry.js'

/** Where a request can go now: a node, nowhere yet (wait for a slot), or never (a typed error). */
export type Placement = { kind: 'node'; node: NodeEntry } | { kind: 'wait' } | { kind: 'refuse'; error: LullError }

/**
 * Chooses among the request's candidate nodes the serving one with the most free slots, ties broken at random.
 * Requests for a model no node serves are refused; requests whose candidates are all connected but busy wait.
 */
export function placeRequest(registry: Registry, header: RequestHeader, random: () => number = Math.random): Placement {
  let best: NodeEntry[] = []
  let bestFree = 0
  let anyCandidateConnected = false
  for (const nodeId of header.candidates) {
    const node = registry.get(nodeId)
    if (node === undefined || node.modelId !== header.model) continue
    anyCandidateConnected = true
    if (node.state !== 'serving') continue
    const free = node.slots - node.inFlight
    if (free <= 0) continue
    if (free > bestFree) {
      best = [node]
      bestFree = free
    } else if (free === bestFree) {
      best.push(node)
    }
  }
  const chosen = best[Math.floor(random() * best.length)]
  if (chosen !== undefined) return { kind: 'node', node: chosen }
  if (anyCandidateConnected) return { kind: 'wait' }
  if (!registry.servesModel(header.model)) {
    return {
      kind: 'refuse',
      error: new LullError(
        ErrorCode.ModelNotFound,
        `no node serves model "${header.model}"; list models to see what is served`,
      ),
    }
  }
  return {
    kind: 'refuse',
    error: new LullError(
      ErrorCode.NoCapacity,
      "none of the request's candidate nodes is connected; fetch the catalogue again and re-seal for current nodes",
    ),
  }
}
