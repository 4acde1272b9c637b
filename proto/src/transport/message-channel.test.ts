import type { Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeFrame } from '../codec/framing.js'
import { encodeMessage } from '../codec/message-codec.js'
import { ErrorCode, FrameTooLargeError } from '../errors.js'
import { COORDINATOR_TO_CLIENT, type CoordinatorToClient } from '../messages.js'
import {
  ChannelTimeoutError,
  channelStats,
  DEFAULT_CHANNEL_LIMITS,
  defaultChannelLimits,
  MessageChannel,
  type Received,
  setDefaultChannelLimits,
} from './message-channel.js'

type Channel = MessageChannel<typeof COORDINATOR_TO_CLIENT>
type Item = Received<CoordinatorToClient>

const cancelFrame = (n: number) =>
  encodeFrame(encodeMessage({ type: 'error', code: 'internal', message: `message ${n}` }))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function header(size: number): Uint8Array {
  const bytes = new Uint8Array(4)
  new DataView(bytes.buffer).setUint32(0, size)
  return bytes
}

const streams: Stream[] = []
async function pair(): Promise<[Stream, Stream]> {
  const [local, remote] = await streamPair({ delay: 0 })
  streams.push(local, remote)
  return [local, remote]
}

afterEach(() => {
  for (const stream of streams.splice(0)) stream.abort(new Error('test over'))
  setDefaultChannelLimits(DEFAULT_CHANNEL_LIMITS)
})

async function collect(channel: Channel, max = Number.POSITIVE_INFINITY): Promise<Item[]> {
  const items: Item[] = []
  for await (const item of channel) {
    items.push(item)
    if (items.length >= max) break
  }
  return items
}

describe('MessageChannel limits', () => {
  it('delivers frames in order and ends cleanly when the peer closes', async () => {
    const [local, remote] = await pair()
    const channel: Channel = new MessageChannel(local, { inbound: COORDINATOR_TO_CLIENT })
    const bytes = Uint8Array.from([...cancelFrame(1), ...cancelFrame(2), ...cancelFrame(3)])
    for (let i = 0; i < bytes.length; i += 7) remote.send(bytes.subarray(i, i + 7))
    await remote.close()
    const items = await collect(channel)
    expect(items.map((item) => item.ok && item.message.type === 'error' && item.message.message)).toEqual([
      'message 1',
      'message 2',
      'message 3',
    ])
  })

  it('drops a frame left unfinished when the peer closes, and releases its bytes', async () => {
    const [local, remote] = await pair()
    const before = channelStats().unfinishedFrameBytes
    const channel: Channel = new MessageChannel(local, { inbound: COORDINATOR_TO_CLIENT })
    remote.send(Uint8Array.from([...cancelFrame(1), ...header(100), ...new Uint8Array(50)]))
    await remote.close()
    const items = await collect(channel)
    expect(items).toHaveLength(1)
    expect(items[0]?.ok).toBe(true)
    await sleep(1)
    expect(channelStats().unfinishedFrameBytes).toBe(before)
  })

  it('aborts a stream with no traffic either way for idleTimeoutMs, with a typed fatal error', async () => {
    const [local, remote] = await pair()
    const started = performance.now()
    const channel: Channel = new MessageChannel(local, {
      inbound: COORDINATOR_TO_CLIENT,
      limits: { idleTimeoutMs: 100 },
    })
    const [item] = await collect(channel)
    expect(performance.now() - started).toBeGreaterThanOrEqual(95)
    expect(item).toMatchObject({ ok: false, fatal: true })
    expect(item?.ok === false && item.error).toBeInstanceOf(ChannelTimeoutError)
    expect(item?.ok === false && item.error.code).toBe(ErrorCode.Timeout)
    expect(local.status).toBe('aborted')
    await sleep(10)
    expect(remote.status).not.toBe('open')
  })

  it('counts bytes received and messages sent as activity', async () => {
    const [local, remote] = await pair()
    const inbound: Channel = new MessageChannel(local, {
      inbound: COORDINATOR_TO_CLIENT,
      limits: { idleTimeoutMs: 150 },
    })
    const outbound: Channel = new MessageChannel(remote, {
      inbound: COORDINATOR_TO_CLIENT,
      limits: { idleTimeoutMs: 150 },
    })
    const reading = collect(inbound)
    for (let i = 0; i < 10; i++) {
      // The remote talks; the local side only listens. Both stay up.
      await outbound.send({ type: 'error', code: 'internal', message: `tick ${i}` })
      await sleep(40)
    }
    expect(local.status).toBe('open')
    expect(remote.status).toBe('open')
    await outbound.close()
    const items = await reading
    expect(items).toHaveLength(10)
    expect(items.every((item) => item.ok)).toBe(true)
  })

  it('aborts a frame trickled a byte at a time once frameTimeoutMs passes, and releases it', async () => {
    const [local, remote] = await pair()
    const before = channelStats().unfinishedFrameBytes
    const channel: Channel = new MessageChannel(local, {
      inbound: COORDINATOR_TO_CLIENT,
      limits: { frameTimeoutMs: 150 },
    })
    const reading = collect(channel)
    const slow = Uint8Array.from([...header(100), ...new Uint8Array(100)])
    const started = performance.now()
    for (let i = 0; i < slow.length && remote.status === 'open'; i++) {
      try {
        remote.send(slow.subarray(i, i + 1))
      } catch {
        break
      }
      await sleep(15)
    }
    const items = await reading
    expect(performance.now() - started).toBeLessThan(1_000)
    expect(items).toHaveLength(1)
    expect(items[0]?.ok === false && items[0].error).toBeInstanceOf(ChannelTimeoutError)
    expect(channelStats().unfinishedFrameBytes).toBe(before)
  })

  it('pauses the stream when the reader falls behind, and loses nothing', async () => {
    const [local, remote] = await pair()
    const channel: Channel = new MessageChannel(local, {
      inbound: COORDINATOR_TO_CLIENT,
      limits: { maxBacklogBytes: 4_096 },
    })
    const frames = Array.from({ length: 200 }, (_, n) => cancelFrame(n))
    for (const frame of frames) remote.send(frame)
    await sleep(50)
    // Nobody is reading: the channel holds about its backlog limit and the stream is paused.
    expect(local.readStatus).toBe('paused')
    expect(channelStats().backlogBytes).toBeLessThanOrEqual(4_096 + 2 * (frames[0]?.length ?? 0) + 64 * 1024)
    const reading = collect(channel, 200)
    const items = await reading
    expect(items.map((item) => item.ok && item.message.type === 'error' && item.message.message)).toEqual(
      frames.map((_, n) => `message ${n}`),
    )
  })

  it('refuses a frame that would take all channels over their unfinished-frame budget', async () => {
    const [local, remote] = await pair()
    const channel: Channel = new MessageChannel(local, {
      inbound: COORDINATOR_TO_CLIENT,
      limits: { maxTotalFrameBytes: channelStats().unfinishedFrameBytes + 1_000 },
    })
    remote.send(Uint8Array.from([...header(5_000), ...new Uint8Array(2_000)]))
    const items = await collect(channel)
    expect(items).toHaveLength(1)
    expect(items[0]?.ok === false && items[0].error.code).toBe(ErrorCode.NoCapacity)
  })

  it('reports an oversized frame once as fatal and ignores what follows', async () => {
    const [local, remote] = await pair()
    const channel: Channel = new MessageChannel(local, { inbound: COORDINATOR_TO_CLIENT, maxFrameBytes: 64 })
    remote.send(header(65))
    remote.send(new Uint8Array(1_000))
    const items = await collect(channel)
    expect(items).toHaveLength(1)
    expect(items[0]?.ok === false && items[0].fatal && items[0].error).toBeInstanceOf(FrameTooLargeError)
  })

  it('takes process defaults for limits its options leave out, and validates them', () => {
    const previous = setDefaultChannelLimits({ idleTimeoutMs: 1_234 })
    expect(previous).toEqual(DEFAULT_CHANNEL_LIMITS)
    expect(defaultChannelLimits().idleTimeoutMs).toBe(1_234)
    expect(defaultChannelLimits().frameTimeoutMs).toBe(DEFAULT_CHANNEL_LIMITS.frameTimeoutMs)
    expect(() => setDefaultChannelLimits({ frameTimeoutMs: -1 })).toThrow(RangeError)
    expect(() => setDefaultChannelLimits({ frameTimeoutMs: Number.NaN })).toThrow(RangeError)
    setDefaultChannelLimits({ idleTimeoutMs: Number.POSITIVE_INFINITY })
    expect(defaultChannelLimits().idleTimeoutMs).toBe(Number.POSITIVE_INFINITY)
  })
})

describe('MessageChannel sending', () => {
  const error = (n: number): CoordinatorToClient => ({ type: 'error', code: 'internal', message: `message ${n}` })
  const texts = (items: Item[]) => items.map((item) => item.ok && item.message.type === 'error' && item.message.message)

  it('hands the messages of one turn to the stream as one write, in order; a later turn writes again', async () => {
    const [local, remote] = await pair()
    const sender: Channel = new MessageChannel(local, { inbound: COORDINATOR_TO_CLIENT })
    const receiver: Channel = new MessageChannel(remote, { inbound: COORDINATOR_TO_CLIENT })
    const writes: number[] = []
    remote.addEventListener('message', (event) => writes.push(event.data.byteLength))
    sender.trySend(error(1))
    sender.trySend(error(2))
    await Promise.resolve()
    await sender.send(error(3)) // a promise job of the same turn: the same write
    await sleep(5)
    expect(writes).toHaveLength(1)
    await sender.send(error(4))
    await sleep(5)
    expect(writes).toHaveLength(2)
    await sender.close()
    expect(texts(await collect(receiver))).toEqual(['message 1', 'message 2', 'message 3', 'message 4'])
  })

  it('sends what a turn queued before closing in that turn', async () => {
    const [local, remote] = await pair()
    const sender: Channel = new MessageChannel(local, { inbound: COORDINATOR_TO_CLIENT })
    const receiver: Channel = new MessageChannel(remote, { inbound: COORDINATOR_TO_CLIENT })
    sender.trySend(error(1))
    sender.trySend(error(2))
    await sender.close()
    expect(texts(await collect(receiver))).toEqual(['message 1', 'message 2'])
    await expect(sender.send(error(3))).rejects.toThrow()
    expect(sender.trySend(error(3))).toBe(false)
  })
})

describe('MessageChannel sending, then resetting', () => {
  it('writes what the turn sent before the reset, as an unbatched send would have', async () => {
    const [local, remote] = await pair()
    const sender: Channel = new MessageChannel(local, { inbound: COORDINATOR_TO_CLIENT })
    const received: number[] = []
    remote.addEventListener('message', (event) => received.push(event.data.byteLength))
    sender.trySend({ type: 'error', code: 'frame-too-large', message: 'that frame was too large' })
    sender.abort(new Error('dropping the link'))
    await sleep(5)
    expect(received).toHaveLength(1)
  })
})
