import type { SubmitMessage } from '@lull/proto'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { type ClientReplies, type Job, newJob } from './job.js'
import { ModelQueues } from './model-queues.js'

function job(model: string, clientId = 'client-a'): Job {
  const submit = {
    type: 'submit',
    requestId: `req-${Math.random()}`,
    header: { model, maxTokens: 8, sizeBucket: 1024, candidates: ['node-a'], priority: 0 },
    sealed: { ciphertext: new Uint8Array(0), keys: [] },
  } as unknown as SubmitMessage
  return newJob({} as ClientReplies, submit, clientId, Date.now())
}

describe('ModelQueues', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('refuses past the bound per model with overloaded and a retry-after', () => {
    const queues = new ModelQueues({ maxPerModel: 2, timeoutMs: 1_000, onExpired: () => {} })
    expect(queues.push(job('a'))).toBeUndefined()
    expect(queues.push(job('a'))).toBeUndefined()
    const refused = queues.push(job('a'))
    expect(refused).toMatchObject({ code: 'overloaded' })
    expect(refused?.retryAfterMs).toBeGreaterThan(0)
    // Another model has its own bound.
    expect(queues.push(job('b'))).toBeUndefined()
    expect([queues.depth('a'), queues.depth('b'), queues.depth('c')]).toEqual([2, 1, 0])
    expect([...queues.models()].sort()).toEqual(['a', 'b'])
  })

  it('expires a job once its wait budget is spent, counted over every stretch it is queued', () => {
    const expired: Job[] = []
    const queues = new ModelQueues({ maxPerModel: 8, timeoutMs: 1_000, onExpired: (each) => expired.push(each) })
    const waiting = job('a')
    queues.push(waiting)
    vi.advanceTimersByTime(600)
    queues.remove(waiting, true) // placed on a node after 600 ms…
    expect(waiting.queuedMs).toBe(600)
    vi.advanceTimersByTime(5_000) // …which runs it for a while, then fails it over: back in the queue
    queues.push(waiting)
    vi.advanceTimersByTime(399)
    expect(expired).toEqual([])
    vi.advanceTimersByTime(1)
    expect(expired).toEqual([waiting])
    expect(queues.has(waiting)).toBe(false)
    expect(waiting.queuedMs).toBe(1_000)
  })

  it('serves in fair order and forgets removed jobs', () => {
    const queues = new ModelQueues({ maxPerModel: 8, timeoutMs: 1_000, onExpired: () => {} })
    const flood = [job('a', 'flooder'), job('a', 'flooder'), job('a', 'flooder')]
    for (const each of flood) queues.push(each)
    const other = job('a', 'other')
    queues.push(other)
    // The other client's one request is not served after the whole flood.
    expect([...queues.ordered('a')].indexOf(other)).toBeLessThan(3)
    queues.remove(other)
    expect(queues.has(other)).toBe(false)
    expect(queues.depth('a')).toBe(3)
    expect([...queues.ordered('nothing')]).toEqual([])
  })
})
