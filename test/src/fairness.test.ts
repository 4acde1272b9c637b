import type { LullClient } from '@lull/client-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PausableNetwork, startPausableNetwork } from './pausable-network.js'

// One node with two slots: any more than two requests saturate the network.
const SLOTS = 2
const FLOOD = 16

describe('fair sharing on a saturated network', () => {
  let network: PausableNetwork
  let flooder: LullClient
  let other: LullClient

  beforeAll(async () => {
    network = await startPausableNetwork({ nodes: 1, slots: SLOTS })
    // Two clients, two connections, two peer ids: two parties to share between.
    flooder = await network.client()
    other = await network.client()
    await network.waitForNodes(flooder, 1)
    await network.waitForNodes(other, 1)
  })

  afterAll(async () => {
    await network?.stop()
  })

  /** Sends a request and records its name in `done` when its answer is complete. */
  const send = (client: LullClient, name: string, done: string[], priority?: number) =>
    client
      .chat({
        model: 'lull-tiny',
        messages: [{ role: 'user', content: `Tell me about ${name}` }],
        maxTokens: 16,
        temperature: 0,
        ...(priority === undefined ? {} : { priority }),
      })
      .final()
      .then(() => {
        done.push(name)
      })

  it("serves another client's few requests long before a flooding client's backlog is drained", async () => {
    await network.pause()
    const done: string[] = []
    const pending: Promise<void>[] = []
    for (let index = 0; index < FLOOD; index++) pending.push(send(flooder, `a${index}`, done))
    await network.until(() => network.queued() === FLOOD, "the flooder's requests to queue")
    // The second client asks after the whole flood is waiting.
    for (let index = 0; index < 3; index++) pending.push(send(other, `b${index}`, done))
    await network.until(() => network.queued() === FLOOD + 3, "the other client's requests to queue")
    await network.resume()
    await Promise.all(pending)

    expect(done).toHaveLength(FLOOD + 3)
    const positions = ['b0', 'b1', 'b2'].map((name) => done.indexOf(name))
    // First come, first served would finish them last (positions 16-18). Shared fairly, the two clients alternate:
    // the other client's three finish among the first eight, with at least ten of the flood still to go.
    for (const position of positions) expect(position).toBeLessThan(8)
  })

  it('serves a higher priority first, even from the client that floods', async () => {
    await network.pause()
    const done: string[] = []
    const pending: Promise<void>[] = []
    for (let index = 0; index < 8; index++) pending.push(send(flooder, `low${index}`, done))
    pending.push(send(other, 'other', done))
    await network.until(() => network.queued() === 9, 'the low-priority requests to queue')
    pending.push(send(flooder, 'urgent', done, 9))
    await network.until(() => network.queued() === 10, 'the urgent request to queue')
    await network.resume()
    await Promise.all(pending)
    // It was sent last, and its client already has eight waiting; priority 9 still goes first (with one other
    // request in the first batch of slots).
    expect(done.indexOf('urgent')).toBeLessThan(SLOTS)
  })
})
