import { ErrorCode, LullError, type RequestHeader } from '@lull/proto'
import {
  SCORE_LATENCY_SMOOTHING_MS,
  SCORE_PRIOR_SUCCESSES,
  SCORE_QUIET_AFTER_MS,
  SCORE_QUIET_FACTOR,
  SCORE_SPEED_FLOOR,
  SCORE_TIE_TOLERANCE,
} from './constants.js'
import type { NodeEntry, Registry } from './registry.js'

/** Where a request can go now: a node, nowhere yet (wait for a slot), or never (a typed error). Each says why. */
export type Placement =
  | { kind: 'node'; node: NodeEntry; reason: string; score: number }
  | { kind: 'wait'; reason: string }
  | { kind: 'refuse'; error: LullError }

/** The parts of a node's score; the score is their product. */
export interface ScoreParts {
  /** Slots the coordinator has not filled. */
  free: number
  /** From the node's measured decode tokens/s, relative to the fastest eligible candidate. */
  speed: number
  /** Less than 1 when the node's last heartbeat reported more busy slots than the coordinator accounts for. */
  queue: number
  /** The node's success rate with the coordinator, with a prior of a few successes. */
  success: number
  /** Its recent time to first token relative to the quickest eligible candidate's. */
  latency: number
  /** Less than 1 when the node has been quiet for over two heartbeat intervals. */
  health: number
}

/**
 * Chooses among the request's candidate nodes the serving one with the best score; candidates within
 * SCORE_TIE_TOLERANCE (10%) of the best are tied, and ties are broken at random.
 *
 * A node's score is `free × speed × queue × success × latency × health` (see {@link ScoreParts}): free slots count
 * most; measured speed, work the node reports beyond what the coordinator gave it, reputation (success rate and
 * recent TTFT) and heartbeat health scale it. Nodes in `exclude` (those that already failed this request) are never
 * chosen; paused and draining nodes and nodes without a free slot get no work. Requests for a model no node serves
 * are refused; requests whose candidates are all connected but busy (or paused) wait.
 */
export function placeRequest(
  registry: Registry,
  header: RequestHeader,
  random: () => number = Math.random,
  exclude?: ReadonlySet<string>,
  nowMs: number = Date.now(),
): Placement {
  const eligible: NodeEntry[] = []
  let connected = 0
  let notServing = 0
  let fastest = 0
  let quickestTtft = Number.POSITIVE_INFINITY
  for (const nodeId of header.candidates) {
    if (exclude?.has(nodeId)) continue
    const node = registry.get(nodeId)
    if (node === undefined || node.modelId !== header.model) continue
    connected++
    if (node.state !== 'serving') {
      notServing++
      continue
    }
    if (node.slots - node.inFlight <= 0) continue
    eligible.push(node)
    fastest = Math.max(fastest, node.benchmark.decodeTokensPerSecond)
    const ttft = registry.countersOf(node.nodeId).ttftEwmaMs
    if (ttft !== undefined) quickestTtft = Math.min(quickestTtft, ttft)
  }
  const scored = eligible.map((node) => {
    const parts = scoreParts(registry, node, fastest, quickestTtft, nowMs)
    return { node, parts, score: productOf(parts) }
  })
  let bestScore = 0
  for (const entry of scored) bestScore = Math.max(bestScore, entry.score)
  // Within the tolerance of the best is a tie: measured rates are noisy.
  const tied = scored.filter((entry) => entry.score >= bestScore * (1 - SCORE_TIE_TOLERANCE))
  const chosen = tied[Math.floor(random() * tied.length)]
  if (chosen !== undefined) {
    const tie =
      tied.length > 1
        ? `, tied (within ${SCORE_TIE_TOLERANCE * 100}% of the best) with ${tied.length - 1} other(s), chosen at random`
        : ''
    return {
      kind: 'node',
      node: chosen.node,
      score: chosen.score,
      reason: `score ${describeScore(chosen.score, chosen.parts, chosen.node)} of ${eligible.length} eligible among ${connected} connected candidate(s)${tie}`,
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

/** The score parts of an eligible node, given the fastest decode rate and quickest TTFT among the eligible. */
export function scoreParts(
  registry: Registry,
  node: NodeEntry,
  fastestTokensPerSecond: number,
  quickestTtftMs: number,
  nowMs: number,
): ScoreParts {
  const free = node.slots - node.inFlight
  const speed =
    fastestTokensPerSecond > 0
      ? SCORE_SPEED_FLOOR + (1 - SCORE_SPEED_FLOOR) * (node.benchmark.decodeTokensPerSecond / fastestTokensPerSecond)
      : 1
  // A heartbeat sent before the coordinator's latest dispatch or finish on this node is out of date.
  const reportFresh =
    node.reportedAtMs !== undefined &&
    (node.lastAssignmentChangeMs === undefined || node.reportedAtMs >= node.lastAssignmentChangeMs)
  const hidden = reportFresh ? Math.max(0, (node.reportedBusySlots ?? 0) - node.inFlight) : 0
  const counters = registry.countersOf(node.nodeId)
  const success =
    (counters.requestsServed + SCORE_PRIOR_SUCCESSES) /
    (counters.requestsServed + counters.errors + SCORE_PRIOR_SUCCESSES)
  const latency =
    counters.ttftEwmaMs === undefined || !Number.isFinite(quickestTtftMs)
      ? 1
      : (SCORE_LATENCY_SMOOTHING_MS + quickestTtftMs) / (SCORE_LATENCY_SMOOTHING_MS + counters.ttftEwmaMs)
  const health = nowMs - node.lastSeenMs > SCORE_QUIET_AFTER_MS ? SCORE_QUIET_FACTOR : 1
  return { free, speed, queue: 1 / (1 + hidden), success, latency, health }
}

function productOf(parts: ScoreParts): number {
  return parts.free * parts.speed * parts.queue * parts.success * parts.latency * parts.health
}

function describeScore(score: number, parts: ScoreParts, node: NodeEntry): string {
  const f = (value: number) => value.toFixed(2)
  return (
    `${f(score)} = ${parts.free}/${node.slots} free × speed ${f(parts.speed)} (${Math.round(node.benchmark.decodeTokensPerSecond)} tok/s)` +
    ` × queue ${f(parts.queue)} × success ${f(parts.success)} × latency ${f(parts.latency)} × health ${f(parts.health)}`
  )
}
