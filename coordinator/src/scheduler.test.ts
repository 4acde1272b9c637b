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
