import type { Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import {
  CLIENT_TO_COORDINATOR,
  type CoordinatorToClient,
  ErrorCode,
  LullError,
  MAX_REQUESTS_PER_CLIENT_STREAM,
  MessageChannel,
  type Received,
} from '@lull/proto'
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_UNREAD_BYTES_PER_REQUEST, RequestSession, type SessionRequest } from './request-session.js'

const streams: Stream[] = []
afterEach(() => {
  for (const stream of streams.splice(0)) stream.abort(new Error('test over'))
})

/** A session over an in-memory stream pair, and the coordinator's end of it. */
async function session() {
  const [local, remote] = await streamPair({ delay: 0 })
  streams.push(local, remote)
  const coordinator = new MessageChannel<typeof CLIENT_TO_COORDINATOR, CoordinatorToClient>(remote, {
    inbound: CLIENT_TO_COORDINATOR,
  })
  return { session: new RequestSession(local), coordinator, remote }
}

/** Everything `request` yields until it ends, or the error it throws. */
async function drain(request: SessionRequest): Promise<{ items: Received<CoordinatorToClient>[]; thrown?: unknown }> {
  const items: Received<CoordinatorToClient>[] = []
  try {
    for await (const item of request) items.push(item)
    return { items }
  } catch (thrown) {
    return { items, thrown }
  }
}

const typesOf = (items: Received<CoordinatorToClient>[]) =>
  items.map((item) => (item.ok ? item.message.type : `error:${item.error.code}`))

describe('RequestSession', () => {
  it("hands each request its own messages, in order, and drops a released request's late ones", async () => {
    const { session: s, coordinator } = await session()
    const a = s.start('request-a-0001')
    const b = s.start('request-b-0001')
    const c = s.start('request-c-0001')
    c.release()
    const data = new Uint8Array(8)
    for (const message of [
      { type: 'dispatched', requestId: 'request-b-0001', nodeId: 'n' },
      { type: 'dispatched', requestId: 'request-a-0001', nodeId: 'n' },
      { type: 'chunk', requestId: 'request-a-0001', data },
      { type: 'chunk', requestId: 'request-c-0001', data },
      { type: 'chunk', requestId: 'request-b-0001', data },
      { type: 'chunk', requestId: 'unknown-request-1', data },
    ] as CoordinatorToClient[]) {
      await coordinator.send(message)
    }
    await coordinator.close()
    const [fromA, fromB] = await Promise.all([drain(a), drain(b)])
    expect(typesOf(fromA.items)).toEqual(['dispatched', 'chunk'])
    expect(typesOf(fromB.items)).toEqual(['dispatched', 'chunk'])
    // The stream ended cleanly: each iteration ends (the caller decides what a missing `end` means).
    expect(fromA.thrown).toBeUndefined()
    expect(s.usable).toBe(false)
  })

  it('ends every request on it when the stream breaks', async () => {
    const { session: s, remote } = await session()
    const requests = [s.start('request-a-0001'), s.start('request-b-0001')]
    remote.abort(new Error('the coordinator went away'))
    for (const outcome of await Promise.all(requests.map(drain))) expect(outcome.thrown).toBeInstanceOf(Error)
    expect(s.ended).toBe(true)
  })

  it('ends every request on it with the error when the coordinator answers a message without a request id', async () => {
    const { session: s, coordinator } = await session()
    const requests = [s.start('request-a-0001'), s.start('request-b-0001')]
    await coordinator.send({ type: 'error', code: ErrorCode.MalformedMessage, message: 'could not read that' })
    for (const { items } of await Promise.all(requests.map(drain))) {
      expect(typesOf(items)).toEqual([`error:${ErrorCode.MalformedMessage}`])
    }
    expect(s.usable).toBe(false)
  })

  it('fails a request, not the session, when a caller does not read it', async () => {
    const { session: s, coordinator } = await session()
    const flooded = s.start('request-a-0001')
    const other = s.start('request-b-0001')
    const data = new Uint8Array(64 * 1024)
    const chunks = Math.ceil(MAX_UNREAD_BYTES_PER_REQUEST / data.byteLength) + 1
    for (let i = 0; i < chunks; i++) await coordinator.send({ type: 'chunk', requestId: 'request-a-0001', data })
    await coordinator.send({ type: 'end', requestId: 'request-b-0001', usage: { promptTokens: 1, outputTokens: 1 } })
    const otherIterator = other[Symbol.asyncIterator]()
    expect((await otherIterator.next()).value).toMatchObject({ ok: true, message: { type: 'end' } })
    const { items } = await drain(flooded)
    expect(typesOf(items)).toEqual([`error:${ErrorCode.Internal}`])
    expect(s.usable).toBe(true)
  })

  it('stops a request at once when it is failed (an abort), and takes no more than its limit', async () => {
    const { session: s } = await session()
    const request = s.start('request-a-0001')
    const pending = drain(request)
    request.fail(new LullError(ErrorCode.Cancelled, 'aborted'))
    expect((await pending).thrown).toBeInstanceOf(LullError)
    request.release()
    const first = s.start('request-00000000')
    for (let i = 1; i < MAX_REQUESTS_PER_CLIENT_STREAM - 1; i++) s.start(`request-${String(i).padStart(8, '0')}`)
    expect(s.usable).toBe(true)
    s.start('request-the-last-one')
    expect(s.usable).toBe(false)
    first.release()
    expect(s.usable).toBe(true)
  })
})
