import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p, Stream } from '@libp2p/interface'
import { LullClient } from '@lull/client-sdk'
import { createLogger, LullNode } from '@lull/node'
import {
  CLIENT_PROTOCOL,
  COORDINATOR_TO_CLIENT,
  createLullHost,
  encodeFrame,
  encodeMsgpack,
  MessageChannel,
  NODE_PROTOCOL,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HostileCoordinator } from './hostile-coordinator.js'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

/** Frames no honest peer sends. Each must earn a typed error reply. */
const MALFORMED_FRAMES: Array<{ name: string; payload: Uint8Array; code: string }> = [
  { name: 'bytes that are not msgpack', payload: Uint8Array.from([0xc1, 0xff, 0x00]), code: 'malformed-message' },
  {
    name: 'an array32 length bomb',
    payload: Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]),
    code: 'malformed-message',
  },
  {
    name: 'deeply nested arrays',
    payload: Uint8Array.from([...new Uint8Array(5_000).fill(0x91), 0xc0]),
    code: 'malformed-message',
  },
  {
    name: 'a truncated message',
    payload: encodeMsgpack({ type: 'cancel', requestId: 'abcdefghij' }).subarray(0, 12),
    code: 'malformed-message',
  },
  {
    name: 'an unknown message type',
    payload: encodeMsgpack({ type: 'take-over', requestId: 'abcdefghij' }),
    code: 'malformed-message',
  },
  {
    name: 'a message with wrong field types',
    payload: encodeMsgpack({ type: 'submit', requestId: 42, header: 'x' }),
    code: 'malformed-message',
  },
  {
    name: 'a __proto__ key',
    payload: encodeMsgpack(JSON.parse('{"__proto__":{"type":"cancel"},"type":"cancel"}')),
    code: 'malformed-message',
  },
]

/** A frame header announcing 16 MiB: over the limit, so the peer must refuse it without reading on. */
const OVERSIZED_HEADER = Uint8Array.from([0x01, 0x00, 0x00, 0x00])

async function readReplies(stream: Stream, count: number) {
  const channel = new MessageChannel(stream, { inbound: COORDINATOR_TO_CLIENT })
  const replies: Array<{ type: string; code?: string }> = []
  for await (const received of channel) {
    if (!received.ok) throw received.error
    replies.push(received.message as { type: string; code?: string })
    if (replies.length === count) break
  }
  return replies
}

describe('malformed and oversized frames', () => {
  let network: TestNetwork
  let attacker: Libp2p

  beforeAll(async () => {
    network = await startTestNetwork({ nodes: 1, slots: 2 })
    attacker = await createLullHost()
  })

  afterAll(async () => {
    await attacker?.stop()
    await network?.stop()
  })

  it('the coordinator answers each malformed frame on a client stream with a typed error, then serves clients', async () => {
    const stream = await attacker.dialProtocol(multiaddr(network.address), CLIENT_PROTOCOL)
    for (const { payload } of MALFORMED_FRAMES) stream.send(encodeFrame(payload))
    const replies = await readReplies(stream, MALFORMED_FRAMES.length)
    expect(replies.map((reply) => reply.code)).toEqual(MALFORMED_FRAMES.map((frame) => frame.code))
    stream.abort(new Error('done'))

    const client = await network.client()
    const answer = await client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'Still there?' }], maxTokens: 8 })
      .final()
    expect(answer.text.length).toBeGreaterThan(0)
  })

  it('the coordinator refuses an oversized frame with frame-too-large and closes only that stream', async () => {
    const stream = await attacker.dialProtocol(multiaddr(network.address), CLIENT_PROTOCOL)
    stream.send(OVERSIZED_HEADER)
    const [reply] = await readReplies(stream, 1)
    expect(reply).toMatchObject({ type: 'error', code: 'frame-too-large' })

    const client = await network.client()
    expect((await client.models())[0]?.nodes.length).toBe(1)
  })

  it('the coordinator answers garbage on the node protocol and keeps its registered nodes', async () => {
    const stream = await attacker.dialProtocol(multiaddr(network.address), NODE_PROTOCOL)
    for (const { payload } of MALFORMED_FRAMES) stream.send(encodeFrame(payload))
    const replies = await readReplies(stream, MALFORMED_FRAMES.length)
    expect(replies.every((reply) => reply.type === 'error' && reply.code === 'malformed-message')).toBe(true)
    stream.abort(new Error('done'))

    const client = await network.client()
    const answer = await client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'And now?' }], maxTokens: 8 })
      .final()
    expect(answer.text.length).toBeGreaterThan(0)
  })
})

describe('malformed and oversized frames sent to a node', () => {
  let hostile: HostileCoordinator
  let node: LullNode
  let dataDir: string

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lull-node-input-'))
    hostile = await HostileCoordinator.start()
    node = await LullNode.start({
      coordinator: hostile.address,
      model: 'lull-tiny',
      dataDir,
      slots: 2,
      threads: 1,
      logger: createLogger('silent'),
    })
    await hostile.waitForNodes(1)
  })

  afterAll(async () => {
    await node?.stop()
    await hostile?.stop()
    await rm(dataDir, { recursive: true, force: true })
  })

  async function askThroughHostile(): Promise<string> {
    const client = await LullClient.connect({ coordinator: hostile.address })
    try {
      return await client
        .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'Hello node' }], maxTokens: 8 })
        .text()
    } finally {
      await client.close()
    }
  }

  it('the node answers each malformed frame with a typed error and keeps serving on the same link', async () => {
    hostile.mode = 'honest'
    const before = hostile.nodeErrors.length
    for (const { payload } of MALFORMED_FRAMES) hostile.sendRawToNode(node.nodeId, encodeFrame(payload))
    const deadline = Date.now() + 10_000
    while (hostile.nodeErrors.length - before < MALFORMED_FRAMES.length && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20))
    const errors = hostile.nodeErrors.slice(before)
    expect(errors.map((error) => error.code)).toEqual(MALFORMED_FRAMES.map((frame) => frame.code))
    expect((await askThroughHostile()).length).toBeGreaterThan(0)
  })

  it('the node refuses an oversized frame, drops that link, reconnects and serves', async () => {
    const before = hostile.nodeErrors.length
    hostile.sendRawToNode(node.nodeId, OVERSIZED_HEADER)
    const error = await hostile.waitForNodeError((candidate) => hostile.nodeErrors.indexOf(candidate) >= before)
    expect(error.code).toBe('frame-too-large')
    await hostile.waitForNodes(1)
    const deadline = Date.now() + 10_000
    let text = ''
    while (text === '' && Date.now() < deadline) {
      text = await askThroughHostile().catch(() => '')
    }
    expect(text.length).toBeGreaterThan(0)
  })
})
