/**
 * Slow, stalled and greedy peers against a real coordinator: each is dropped (or refused) within its limit, holds
 * no more memory than one frame, and the coordinator keeps serving an honest client throughout.
 *
 * The coordinator creates its channels itself, so the tests shorten the channel timeouts process-wide with
 * `setDefaultChannelLimits` (after the network is up: the node links keep the production limits) and restore them
 * afterwards. The production values are checked against what they must exceed at the end.
 */
import type { Libp2p, Stream } from '@libp2p/interface'
import {
  type ChannelLimits,
  CLIENT_PROTOCOL,
  channelStats,
  createLullHost,
  DEFAULT_CHANNEL_LIMITS,
  defaultChannelLimits,
  encodeFrame,
  FRAME_RECEIVE_TIMEOUT_MS,
  HEARTBEAT_INTERVAL_MS,
  MAX_FRAME_BYTES,
  MAX_NODE_LINK_STREAMS,
  NODE_PROTOCOL,
  STREAM_IDLE_TIMEOUT_MS,
  setDefaultChannelLimits,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

/** Short limits for the attacks; each test sets what it needs on top of the production defaults. */
const FRAME_TIMEOUT_MS = 600
const IDLE_TIMEOUT_MS = 1_000
/** Slack for timers and loopback scheduling on a loaded two-core machine. */
const SLACK_MS = 1_500

/** Resolves with the ms until the stream closes (reset by the coordinator), or rejects after `withinMs`. */
function closed(stream: Stream, withinMs: number): Promise<number> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    if (stream.status !== 'open') {
      resolve(0)
      return
    }
    const timer = setTimeout(() => reject(new Error(`stream still ${stream.status} after ${withinMs} ms`)), withinMs)
    stream.addEventListener(
      'close',
      () => {
        clearTimeout(timer)
        resolve(performance.now() - started)
      },
      { once: true },
    )
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function header(size: number): Uint8Array {
  const bytes = new Uint8Array(4)
  new DataView(bytes.buffer).setUint32(0, size)
  return bytes
}

/** Sends without throwing once the coordinator has reset the stream. */
function trySend(stream: Stream, bytes: Uint8Array): void {
  try {
    if (stream.status === 'open' && stream.writeStatus === 'writable') stream.send(bytes)
  } catch {
    // reset meanwhile
  }
}

describe('slow and greedy peers against a real coordinator', () => {
  let network: TestNetwork
  let attacker: Libp2p
  let productionLimits: Readonly<ChannelLimits>
  let address: ReturnType<typeof multiaddr>

  beforeAll(async () => {
    network = await startTestNetwork({ nodes: 1, slots: 2 })
    attacker = await createLullHost()
    address = multiaddr(network.address)
    productionLimits = defaultChannelLimits()
  })

  afterEach(() => {
    setDefaultChannelLimits(productionLimits)
  })

  afterAll(async () => {
    setDefaultChannelLimits(productionLimits)
    await attacker?.stop()
    await network?.stop()
  })

  async function ask(content: string): Promise<string> {
    const client = await network.client()
    return client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content }], maxTokens: 8 }).text()
  }

  const openClientStream = () => attacker.dialProtocol(address, CLIENT_PROTOCOL, { maxOutboundStreams: 1_000 })

  it('drops a peer that trickles a frame one byte at a time, and one that stalls mid-frame', async () => {
    setDefaultChannelLimits({ frameTimeoutMs: FRAME_TIMEOUT_MS })
    const trickler = await openClientStream()
    const staller = await openClientStream()
    const padded = encodeFrame(new Uint8Array(2_000))

    trySend(staller, padded.subarray(0, 1_000)) // half a frame, then nothing
    const stallerClosed = closed(staller, FRAME_TIMEOUT_MS + SLACK_MS)
    const tricklerClosed = closed(trickler, FRAME_TIMEOUT_MS + SLACK_MS)
    let sent = 0
    const trickle = (async () => {
      // A byte every 50 ms keeps the stream busy, but the frame would take far longer than the frame timeout.
      const slow = concat(header(200), new Uint8Array(200))
      while (trickler.status === 'open' && sent < slow.length) {
        trySend(trickler, slow.subarray(sent, sent + 1))
        sent++
        await sleep(50)
      }
    })()
    // An honest client is served while both attacks are under way.
    expect((await ask('Are you still there?')).length).toBeGreaterThan(0)
    expect(await stallerClosed).toBeLessThan(FRAME_TIMEOUT_MS + SLACK_MS)
    expect(await tricklerClosed).toBeLessThan(FRAME_TIMEOUT_MS + SLACK_MS)
    await trickle
    expect(sent).toBeLessThan(60)
  })

  it('drops a peer that opens a stream and sends nothing', async () => {
    setDefaultChannelLimits({ idleTimeoutMs: IDLE_TIMEOUT_MS })
    const silent = await openClientStream()
    const elapsed = await closed(silent, IDLE_TIMEOUT_MS + SLACK_MS)
    expect(elapsed).toBeGreaterThan(IDLE_TIMEOUT_MS / 2)
    expect((await ask('Hello again')).length).toBeGreaterThan(0)
  })

  it('holds nothing for frames announced just under the limit, and at most one frame for one half sent', async () => {
    setDefaultChannelLimits({ frameTimeoutMs: 2 * FRAME_TIMEOUT_MS })
    const baseline = channelStats().unfinishedFrameBytes
    const announcers = await Promise.all(Array.from({ length: 16 }, openClientStream))
    for (const stream of announcers) trySend(stream, concat(header(MAX_FRAME_BYTES - 1), new Uint8Array(100)))
    const half = await openClientStream()
    const halfFrame = new Uint8Array(MAX_FRAME_BYTES / 2)
    trySend(half, concat(header(MAX_FRAME_BYTES - 1), halfFrame))

    // Wait until the coordinator has all of it, then look at what it holds.
    const deadline = performance.now() + 1_000
    while (channelStats().unfinishedFrameBytes - baseline < halfFrame.length && performance.now() < deadline) {
      await sleep(10)
    }
    const held = channelStats().unfinishedFrameBytes - baseline
    // 16 announcements of 1 MiB cost at most 4 KiB each; the half frame at most its own size, rounded up.
    expect(held).toBeGreaterThanOrEqual(halfFrame.length)
    expect(held).toBeLessThanOrEqual(16 * 4_096 + MAX_FRAME_BYTES)

    await Promise.all([...announcers, half].map((stream) => closed(stream, 2 * FRAME_TIMEOUT_MS + SLACK_MS)))
    expect(channelStats().unfinishedFrameBytes).toBe(baseline)
    expect((await ask('Anyone home?')).length).toBeGreaterThan(0)
  })

  it('refuses streams beyond the per-protocol limit on one connection', async () => {
    // Node links: the live one plus one replacing it.
    const links: Stream[] = []
    for (let i = 0; i < MAX_NODE_LINK_STREAMS + 1; i++) {
      links.push(await attacker.dialProtocol(address, NODE_PROTOCOL, { maxOutboundStreams: 10 }))
    }
    const extraLink = links[MAX_NODE_LINK_STREAMS] as Stream
    await closed(extraLink, SLACK_MS)
    expect(links.slice(0, MAX_NODE_LINK_STREAMS).every((stream) => stream.status === 'open')).toBe(true)
    for (const stream of links) stream.abort(new Error('done'))

    // Client streams: 256 per connection (the coordinator's MAX_CLIENT_STREAMS_PER_CONNECTION).
    const clientStreams = await Promise.all(Array.from({ length: 257 }, openClientStream))
    const refused = await Promise.race([
      Promise.any(clientStreams.map((stream) => closed(stream, SLACK_MS))).then(() => true),
      sleep(SLACK_MS + 100).then(() => false),
    ])
    expect(refused).toBe(true)
    await sleep(100)
    expect(clientStreams.filter((stream) => stream.status !== 'open')).toHaveLength(1)
    for (const stream of clientStreams) stream.abort(new Error('done'))

    expect((await ask('Still serving?')).length).toBeGreaterThan(0)
  })

  it('uses production limits that leave room for heartbeats and queued requests', () => {
    expect(DEFAULT_CHANNEL_LIMITS.idleTimeoutMs).toBe(STREAM_IDLE_TIMEOUT_MS)
    expect(DEFAULT_CHANNEL_LIMITS.frameTimeoutMs).toBe(FRAME_RECEIVE_TIMEOUT_MS)
    // A node link is idle between heartbeats; a client stream may wait 30 s in the queue before its first byte.
    expect(STREAM_IDLE_TIMEOUT_MS).toBeGreaterThanOrEqual(10 * HEARTBEAT_INTERVAL_MS)
    expect(STREAM_IDLE_TIMEOUT_MS).toBeGreaterThanOrEqual(2 * 30_000)
    // A largest frame must be able to arrive in the frame timeout at a modest 64 KB/s.
    expect(FRAME_RECEIVE_TIMEOUT_MS).toBeGreaterThanOrEqual((MAX_FRAME_BYTES / 64_000) * 1_000)
  })
})

/** The parts joined into one array. */
function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}
