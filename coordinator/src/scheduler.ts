import { ErrorCode, LullError, type RequestHeader } from '@lull/proto'
import type { NodeEntry, Registry } from './registry.js'

/** Where a request can go now: a node, nowhere yet (wait for a slot), or never (a typed error). Each says why. */
export type Placement =
  | { kind: 'node'; node: NodeEntry; reason: string }
  | { kind: 'wait'; reason: string }
  | { kind: 'refuse'; error: LullError }

/**
 * Chooses among the request's candidate nodes the serving one with the most free slots, ties broken at random.
 * Nodes in `exclude` (those that already failed this request) are never chosen. Paused and draining nodes get no
 * work. Requests for a model no node serves are refused; requests whose candidates are all connected but busy (or
 * paused) wait.
 */
export function placeRequest(
  registry: Registry,
  header: RequestHeader,
  random: () => number = Math.random,
  exclude?: ReadonlySet<string>,
): Placement {
  let best: NodeEntry[] = []
  let bestFree = 0
  let connected = 0
  let notServing = 0
  for (const nodeId of header.candidates) {
    if (exclude?.has(nodeId)) continue
    const node = registry.get(nodeId)
    if (node === undefined || node.modelId !== header.model) continue
    connected++
    if (node.state !== 'serving') {
      notServing++
      continue
    }
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
  if (chosen !== undefined) {
    const tie = best.length > 1 ? `, tied with ${best.length - 1} other(s), chosen at random` : ''
    return {
      kind: 'node',
      node: chosen,
      reason: `most free slots (${bestFree}/${chosen.slots}) among ${connected} connected candidate(s)${tie}`,
    }
  }
  if (connected > 0) {
    return {
      kind: 'wait',
      reason: `no free slot on the ${connected} connected candidate(s): ${connected - notServing} busy, ${notServing} paused or draining`,
    }
  }
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
