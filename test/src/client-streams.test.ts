import { randomBytes } from 'node:crypto'
import type { Libp2p } from '@libp2p/interface'
import type { NodeInfo } from '@lull/client-sdk'
import {
  CLIENT_PROTOCOL,
  type ClientToCoordinator,
  COORDINATOR_TO_CLIENT,
  type CoordinatorToClient,
  createLullHost,
  createRequestId,
  encodeHeaderAad,
  encodeRequestBody,
  MAX_REQUESTS_PER_CLIENT_STREAM,
  MessageChannel,
  type RequestHeader,
  type SubmitMessage,
  sealRequest,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { ScriptedNode } from './scripted-node.js'
import { until } from './until.js'

/**
 * A client stream is long-lived and carries many requests, each message naming its request. The SDK keeps one such
 * stream (a session) on its held connection; the catalogue is fetched on short streams of its own. Streams must not
 * pile up: the coordinator refuses streams past its per-connection limit, so a leak would turn into failed requests
 * after a few hundred.
 */
let network: TestNetwork
/** A real node, and a scripted one that answers as each test sets it (to hold requests open, say). */
let node: NodeInfo
let scripted: ScriptedNode
let scriptedInfo: NodeInfo
let raw: Libp2p

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 1, slots: 4 })
  const client = await network.client()
  await network.waitForNodes(client, 1)
  node = (await client.models()).find((model) => model.id === 'lull-tiny')?.nodes[0] as NodeInfo
  scripted = await ScriptedNode.start({
    coordinator: network.address,
    modelDigest: node.certificate.modelDigest,
    behaviour: 'hold',
  })
  await network.waitForNodes(client, 2)
  const nodes = (await client.models()).find((model) => model.id === 'lull-tiny')?.nodes ?? []
  scriptedInfo = nodes.find((info) => info.nodeId === scripted.nodeId) as NodeInfo
  await client.close()
  raw = await createLullHost()
})

afterAll(async () => {
  await raw?.stop()
  await scripted?.stop()
  await network?.stop()
})

/** Client streams open on the coordinator's side, over all its connections. */
function openClientStreams(): number {
  return network.coordinator.host
    .getConnections()
    .flatMap((connection) => connection.streams)
    .filter((stream) => stream.protocol === CLIENT_PROTOCOL && stream.status === 'open').length
}

/** A sealed request for `target` (the real node unless given), under a fresh id. */
async function sealedSubmit(maxTokens: number, target: NodeInfo = node): Promise<SubmitMessage> {
  const body = encodeRequestBody({
    messages: [{ role: 'user', content: 'Tell me about the harbour' }],
    maxTokens,
    temperature: 0.8,
    createdAtMs: Date.now(),
    nonce: randomBytes(16),
  })
  const header: RequestHeader = {
    model: 'lull-tiny',
    maxTokens,
    sizeBucket: body.byteLength,
    candidates: [target.nodeId],
    priority: 0,
  }
  const { sealed } = await sealRequest(
    body,
    [{ nodeId: target.nodeId, publicKey: target.certificate.hpkePublicKey }],
    encodeHeaderAad(header),
  )
  return { type: 'submit', requestId: createRequestId(), header, sealed }
}

/** One raw client stream; every message it receives is kept, by request id. */
async function rawStream() {
  const stream = await raw.dialProtocol(multiaddr(network.address), CLIENT_PROTOCOL)
  const channel = new MessageChannel<typeof COORDINATOR_TO_CLIENT, ClientToCoordinator>(stream, {
    inbound: COORDINATOR_TO_CLIENT,
  })
  const byRequest = new Map<string, CoordinatorToClient[]>()
  let closed = false
  void (async () => {
    for await (const received of channel) {
      if (!received.ok) continue
      const id = 'requestId' in received.message ? (received.message.requestId ?? '') : ''
      byRequest.set(id, [...(byRequest.get(id) ?? []), received.message])
    }
  })()
    .catch(() => {})
    .finally(() => {
      closed = true
    })
  const types = (requestId: string) => (byRequest.get(requestId) ?? []).map((message) => message.type)
  return { channel, stream, types, isClosed: () => closed }
}

describe('one client stream', () => {
  it('carries requests at once and one after another, each answered under its own id; it stays open', async () => {
    const { channel, types, isClosed } = await rawStream()
    const first = [await sealedSubmit(48), await sealedSubmit(48), await sealedSubmit(48)]
    for (const submit of first) await channel.send(submit)
    for (const { requestId } of first) await until(() => types(requestId).includes('end'), `${requestId} to end`)
    const later = await sealedSubmit(16)
    await channel.send(later)
    await until(() => types(later.requestId).includes('end'), 'the later request to end')
    for (const { requestId } of [...first, later]) {
      const seen = types(requestId)
      expect(seen[0]).toBe('dispatched')
      expect(seen.filter((type) => type === 'chunk').length).toBeGreaterThan(0)
      expect(seen.at(-1)).toBe('end')
    }
    expect(isClosed()).toBe(false)
    await channel.close()
  })

  it('refuses a second request under an id in flight, and the first goes on', async () => {
    const { channel, types } = await rawStream()
    const submit = await sealedSubmit(400)
    await channel.send(submit)
    await channel.send(submit)
    await until(() => types(submit.requestId).includes('end'), 'the request to end')
    expect(types(submit.requestId)).toContain('error')
    expect(types(submit.requestId).filter((type) => type === 'end')).toHaveLength(1)
    await channel.close()
  })

  it('a cancel stops one request and not the others; closing the stream cancels what is left on it', async () => {
    const { channel, stream, types } = await rawStream()
    scripted.behaviour = 'first-chunk-then-hold'
    const [cancelled, other] = [await sealedSubmit(64, scriptedInfo), await sealedSubmit(64, scriptedInfo)]
    await channel.send(cancelled)
    await channel.send(other)
    await until(() => types(cancelled.requestId).includes('chunk'), 'the first chunk')
    await until(() => types(other.requestId).includes('chunk'), 'the other first chunk')
    const [cancelledOnNode, otherOnNode] = scripted.dispatches.slice(-2).map((dispatch) => dispatch.requestId)
    await channel.send({ type: 'cancel', requestId: cancelled.requestId })
    await until(() => scripted.cancels.includes(cancelledOnNode as string), 'the cancel to reach the node')
    expect(scripted.cancels).not.toContain(otherOnNode)

    stream.abort(new Error('the client went away'))
    await until(() => scripted.cancels.includes(otherOnNode as string), 'the stream closing to cancel the other')
  })

  it(`takes at most ${MAX_REQUESTS_PER_CLIENT_STREAM} requests at once`, async () => {
    const { channel, types } = await rawStream()
    scripted.behaviour = 'hold'
    // Held on the scripted node's 64 slots, or queued behind them: all stay in flight.
    const submits = await Promise.all(
      Array.from({ length: MAX_REQUESTS_PER_CLIENT_STREAM + 1 }, () => sealedSubmit(64, scriptedInfo)),
    )
    const dispatchedBefore = scripted.dispatches.length
    for (const submit of submits) await channel.send(submit)
    const last = submits.at(-1) as SubmitMessage
    await until(() => types(last.requestId).includes('error'), 'the one over the limit to be refused')
    expect(types(last.requestId)).toEqual(['error'])
    expect(types(submits[0]?.requestId as string)).toEqual(['dispatched'])
    const held = scripted.dispatches.slice(dispatchedBefore).map((dispatch) => dispatch.requestId)
    expect(held.length).toBeGreaterThan(0)
    await channel.close()
    await until(() => held.every((id) => scripted.cancels.includes(id)), 'the stream closing to cancel its requests')
    await until(() => network.coordinator.status().totals.queued[0]?.depth === 0, 'its queued requests to go')
  })
})

describe('the SDK', () => {
  it('sends concurrent requests on one stream, and leaves no other behind', async () => {
    const client = await network.client()
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, index) =>
          client
            .chat({
              model: 'lull-tiny',
              messages: [{ role: 'user', content: `Round ${round}, ${index}` }],
              maxTokens: 4,
            })
            .text(),
        ),
      )
      expect(answers.every((text) => text.length > 0)).toBe(true)
    }
    // Only this client's session is left (the raw streams above were closed).
    await until(() => openClientStreams() === 1, 'one client stream to be left open')
    await client.close()
    await until(() => openClientStreams() === 0, 'the session to close with the client')
  })
})
