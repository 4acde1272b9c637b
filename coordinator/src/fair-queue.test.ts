import { describe, expect, it } from 'vitest'
import { FairQueue } from './fair-queue.js'

interface Item {
  name: string
}
const item = (name: string): Item => ({ name })

/** Serves the queue to the end, in order, as a scheduler with one free slot at a time would. */
function serveAll(queue: FairQueue<Item>): string[] {
  const served: string[] = []
  for (;;) {
    const next = queue.ordered().next()
    if (next.done) return served
    queue.take(next.value)
    served.push(next.value.name)
  }
}

describe('FairQueue', () => {
  it('is first in, first out for one client', () => {
    const queue = new FairQueue<Item>()
    for (const name of ['a1', 'a2', 'a3']) queue.push(item(name), 'a', 0)
    expect(serveAll(queue)).toEqual(['a1', 'a2', 'a3'])
  })

  it("serves a second client's requests within a turn of arriving, not after a flooding client's backlog", () => {
    const queue = new FairQueue<Item>()
    for (let index = 0; index < 20; index++) queue.push(item(`a${index}`), 'a', 0)
    // Two of A's requests are served before B arrives.
    queue.take(queue.ordered().next().value as Item)
    queue.take(queue.ordered().next().value as Item)
    for (const name of ['b0', 'b1', 'b2']) queue.push(item(name), 'b', 0)
    const order = serveAll(queue)
    expect(order.slice(0, 6).sort()).toEqual(['a2', 'a3', 'a4', 'b0', 'b1', 'b2'])
    expect(order.filter((name) => name.startsWith('a'))).toEqual(Array.from({ length: 18 }, (_, i) => `a${i + 2}`))
  })

  it('gives a client with weight 2 twice the turns of one with weight 1', () => {
    const queue = new FairQueue<Item>({ clientWeight: (clientId) => (clientId === 'heavy' ? 2 : 1) })
    for (let index = 0; index < 12; index++) {
      queue.push(item(`h${index}`), 'heavy', 0)
      queue.push(item(`l${index}`), 'light', 0)
    }
    const firstNine = serveAll(queue).slice(0, 9)
    expect(firstNine.filter((name) => name.startsWith('h'))).toHaveLength(6)
  })

  it('serves a higher priority first, whoever sent it, and fairly within it', () => {
    const queue = new FairQueue<Item>()
    for (let index = 0; index < 5; index++) queue.push(item(`low${index}`), 'a', 0)
    queue.push(item('urgent-a'), 'a', 9)
    queue.push(item('urgent-b'), 'b', 9)
    queue.push(item('middle'), 'b', 5)
    expect(serveAll(queue).slice(0, 4)).toEqual(['urgent-b', 'urgent-a', 'middle', 'low0'])
  })

  it('puts a request that comes back (failed over) ahead of later arrivals, without charging its client again', () => {
    const queue = new FairQueue<Item>()
    const first = item('a0')
    queue.push(first, 'a', 0)
    queue.push(item('a1'), 'a', 0)
    queue.take(first)
    queue.push(item('b0'), 'b', 0)
    queue.push(first, 'a', 0)
    expect(serveAll(queue)).toEqual(['a0', 'b0', 'a1'])
  })

  it('forgets removed requests and does not charge their client for them', () => {
    const queue = new FairQueue<Item>()
    const dropped = item('a1')
    queue.push(item('a0'), 'a', 0)
    queue.push(dropped, 'a', 0)
    expect(queue.remove(dropped)).toBe(true)
    expect(queue.remove(dropped)).toBe(false)
    expect(queue.size).toBe(1)
    queue.push(item('a2'), 'a', 0)
    queue.push(item('b0'), 'b', 0)
    queue.push(item('b1'), 'b', 0)
    // a2 takes the turn a1 gave up: it ties with b1 and came first.
    expect(serveAll(queue)).toEqual(['a0', 'b0', 'a2', 'b1'])
  })
})
