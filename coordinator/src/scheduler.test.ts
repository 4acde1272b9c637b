import type { RequestHeader } from '@lull/proto'
import { describe, expect, it } from 'vitest'
import { type NodeEntry, Registry } from './registry.js'
import { placeRequest } from './scheduler.js'

function node(nodeId: string, overrides: Partial<NodeEntry> = {}): NodeEntry {
  return {
    nodeId,
    modelId: 'lull-tiny',
    certificate: {} as NodeEntry['certificate'],
    slots: 2,
    inFlight: 0,
    benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 1 },
    state: 'serving',
    lastSeenMs: 0,
    registeredAtMs: 0,
    channel: {} as NodeEntry['channel'],
    ...overrides,
  }
}

function header(candidates: string[], model = 'lull-tiny'): RequestHeader {
  return { model, maxTokens: 16, sizeBucket: 1024, candidates, priority: 0 }
}

function registryOf(...nodes: NodeEntry[]): Registry {
  const registry = new Registry()
  for (const entry of nodes) registry.add(entry)
  return registry
}

describe('placeRequest', () => {
  it('chooses the candidate with the most free slots', () => {
    const registry = registryOf(node('a', { inFlight: 1 }), node('b'), node('c', { slots: 8 }))
    const placement = placeRequest(registry, header(['a', 'b']))
    expect(placement).toMatchObject({ kind: 'node', node: { nodeId: 'b' } })
  })

  it('never places a request on a node that is not one of its candidates', () => {
    const registry = registryOf(node('a', { inFlight: 2 }), node('b', { slots: 100 }))
    expect(placeRequest(registry, header(['a']))).toMatchObject({ kind: 'wait' })
  })

  it('skips paused and draining nodes and nodes serving another model', () => {
    const registry = registryOf(
      node('a', { state: 'paused' }),
      node('b', { state: 'draining' }),
      node('c', { modelId: 'other' }),
    )
    expect(placeRequest(registry, header(['a', 'b', 'c']))).toMatchObject({ kind: 'wait' })
  })

  it('breaks ties at random', () => {
    const registry = registryOf(node('a'), node('b'))
    const first = placeRequest(registry, header(['a', 'b']), () => 0)
    const last = placeRequest(registry, header(['a', 'b']), () => 0.99)
    expect(first.kind === 'node' && first.node.nodeId).toBe('a')
    expect(last.kind === 'node' && last.node.nodeId).toBe('b')
  })

  it('refuses a model nobody serves with model-not-found', () => {
    const placement = placeRequest(registryOf(node('a')), header(['a'], 'missing'))
    expect(placement.kind === 'refuse' && placement.error.code).toBe('model-not-found')
  })

  it('refuses with retryable no-capacity when no candidate is connected', () => {
    const placement = placeRequest(registryOf(node('a')), header(['gone']))
    expect(placement.kind).toBe('refuse')
    if (placement.kind === 'refuse') {
      expect(placement.error.code).toBe('no-capacity')
      expect(placement.error.isRetryable).toBe(true)
    }
  })

  it('never places a request on a node that already failed it', () => {
    const registry = registryOf(node('a', { slots: 8 }), node('b', { inFlight: 2 }))
    expect(placeRequest(registry, header(['a', 'b']), Math.random, new Set(['a']))).toMatchObject({ kind: 'wait' })
    expect(placeRequest(registry, header(['a']), Math.random, new Set(['a']))).toMatchObject({
      kind: 'refuse',
      error: { code: 'no-capacity' },
    })
    expect(placeRequest(registry, header(['a', 'b']), Math.random, new Set(['b']))).toMatchObject({
      kind: 'node',
      node: { nodeId: 'a' },
    })
  })
})

describe('node scoring', () => {
  const NOW_MS = 1_000_000
  const fresh = { lastSeenMs: NOW_MS }
  const place = (registry: Registry, candidates: string[]) =>
    placeRequest(registry, header(candidates), () => 0, undefined, NOW_MS)
  const chosen = (registry: Registry, candidates: string[]) => {
    const placement = place(registry, candidates)
    return placement.kind === 'node' ? placement.node.nodeId : placement.kind
  }

  it('prefers the faster node (measured decode tokens/s) at equal free slots, in either candidate order', () => {
    const slow = node('slow', { ...fresh, benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 100 } })
    const fast = node('fast', { ...fresh, benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 400 } })
    expect(chosen(registryOf(slow, fast), ['slow', 'fast'])).toBe('fast')
    expect(chosen(registryOf(slow, fast), ['fast', 'slow'])).toBe('fast')
  })

  it('treats scores within 10% of the best as tied, chosen at random', () => {
    const a = node('a', { ...fresh, benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 1_000 } })
    const b = node('b', { ...fresh, benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 950 } })
    const first = placeRequest(registryOf(a, b), header(['a', 'b']), () => 0, undefined, NOW_MS)
    const last = placeRequest(registryOf(a, b), header(['a', 'b']), () => 0.99, undefined, NOW_MS)
    expect(first.kind === 'node' && first.node.nodeId).toBe('a')
    expect(last.kind === 'node' && last.node.nodeId).toBe('b')
    expect(last.kind === 'node' && last.reason).toContain('tied (within 10% of the best) with 1 other(s)')
  })

  it('lets free slots outweigh a moderate speed difference', () => {
    const roomy = node('roomy', {
      ...fresh,
      slots: 4,
      benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 200 },
    })
    const full = node('full', {
      ...fresh,
      slots: 4,
      inFlight: 3,
      benchmark: { prefillTokensPerSecond: 1, decodeTokensPerSecond: 400 },
    })
    expect(chosen(registryOf(roomy, full), ['full', 'roomy'])).toBe('roomy')
  })

  it('prefers the node with the better success record', () => {
    const registry = registryOf(node('flaky', fresh), node('steady', fresh))
    registry.countersOf('flaky').requestsServed = 10
    registry.countersOf('flaky').errors = 3
    registry.countersOf('steady').requestsServed = 10
    expect(chosen(registry, ['flaky', 'steady'])).toBe('steady')
    expect(chosen(registry, ['steady', 'flaky'])).toBe('steady')
  })

  it('prefers the node with the quicker recent time to first token', () => {
    const registry = registryOf(node('sluggish', fresh), node('quick', fresh))
    registry.countersOf('sluggish').ttftEwmaMs = 400
    registry.countersOf('quick').ttftEwmaMs = 30
    expect(chosen(registry, ['sluggish', 'quick'])).toBe('quick')
    expect(chosen(registry, ['quick', 'sluggish'])).toBe('quick')
  })

  it("counts busy slots from a node's fresh heartbeat beyond the coordinator's own count, but not a stale one", () => {
    const loaded = node('loaded', { ...fresh, slots: 4, reportedBusySlots: 3, reportedAtMs: NOW_MS - 10 })
    const idle = node('idle', { ...fresh, slots: 4, reportedBusySlots: 0, reportedAtMs: NOW_MS - 10 })
    expect(chosen(registryOf(loaded, idle), ['loaded', 'idle'])).toBe('idle')
    // The heartbeat predates the coordinator's last change on that node: it describes load already accounted for.
    const stale = node('loaded', { ...loaded, lastAssignmentChangeMs: NOW_MS - 5 })
    const tie = place(registryOf(stale, idle), ['loaded', 'idle'])
    expect(tie).toMatchObject({ kind: 'node', node: { nodeId: 'loaded' } })
    expect(tie.kind === 'node' && tie.reason).toContain('with 1 other(s), chosen at random')
  })

  it('prefers a node that heartbeats on time over a quiet one', () => {
    const quiet = node('quiet', { lastSeenMs: NOW_MS - 13_000 })
    const chatty = node('chatty', { lastSeenMs: NOW_MS - 1_000 })
    expect(chosen(registryOf(quiet, chatty), ['quiet', 'chatty'])).toBe('chatty')
    expect(chosen(registryOf(quiet, chatty), ['chatty', 'quiet'])).toBe('chatty')
  })

  it('says every score part in the reason', () => {
    const registry = registryOf(node('a', { ...fresh, slots: 4, inFlight: 1 }))
    registry.countersOf('a').ttftEwmaMs = 25
    const placement = place(registry, ['a'])
    expect(placement.kind === 'node' && placement.reason).toMatch(
      /score [\d.]+ = 3\/4 free × speed 1\.00 \(1 tok\/s\) × queue 1\.00 × success 1\.00 × latency 1\.00 × health 1\.00/,
    )
  })
})
