import { randomBytes } from 'node:crypto'
import type { Libp2p } from '@libp2p/interface'
import { LullClient, type NodeInfo } from '@lull/client-sdk'
import {
  CLIENT_PROTOCOL,
  type ClientToCoordinator,
  COORDINATOR_TO_CLIENT,
  COORDINATOR_TO_NODE,
  type CoordinatorToClient,
  createLullHost,
  createRequestId,
  encodeHeaderAad,
  encodeRequestBody,
  MessageChannel,
  type RequestHeader,
  sealRequest,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { messageOf } from './frames.js'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { type ScriptedBehaviour, ScriptedNode } from './scripted-node.js'
import { until } from './until.js'

const DIGEST = 'd'.repeat(64)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** What a raw submit came to: the coordinator's last message, and when (in the order of all submits here). */
interface Ended {
  name: string
  code: string
}

describe('deadlines and the queue wait budget', () => {
  let network: TestNetwork
  let client: LullClient
  let raw: Libp2p
  const nodes: ScriptedNode[] = []
  /** Request ids the coordinator sent `cancel` for, to any node. */
  const cancelsToNodes: string[] = []
  /** Every request id the coordinator dispatched to a node. */
  const dispatchedIds: string[] = []
  const endings: Ended[] = []

  beforeEach(async () => {
    cancelsToNodes.length = 0
    dispatchedIds.length = 0
    endings.length = 0
    network = await startTestNetwork({
      nodes: 0,
      coordinatorOptions: { queueTimeoutMs: 2_000 },
      frameObserver: (direction, payload) => {
        if (direction !== 'out') return
        const message = messageOf(payload, COORDINATOR_TO_NODE)
        if (message?.type === 'cancel') cancelsToNodes.push(message.requestId)
        if (message?.type === 'dispatch') dispatchedIds.push(message.requestId)
        if (message?.type === 'dispatch-batch') dispatchedIds.push(...message.requests.map((r) => r.requestId))
      },
    })
    client = await LullClient.connect({ coordinator: network.address, maxRetries: 0 })
    raw = await createLullHost()
  })

  afterEach(async () => {
    await client?.close()
    await raw?.stop()
    for (const node of nodes.splice(0)) await node.stop()
    await network?.stop()
  })

  async function scriptedNode(behaviour: ScriptedBehaviour, slots = 1): Promise<ScriptedNode> {
    const node = await ScriptedNode.start({
      coordinator: network.address,
      modelDigest: DIGEST,
      slots,
      behaviour,
      heartbeatMs: 1_000,
    })
    nodes.push(node)
    return node
  }

  async function catalogue(count: number): Promise<NodeInfo[]> {
    const deadline = Date.now() + 10_000
    for (;;) {
      const listed = (await client.models()).find((model) => model.id === 'lull-tiny')?.nodes ?? []
      if (listed.length >= count) return listed
      if (Date.now() > deadline) throw new Error(`the catalogue did not list ${count} nodes`)
      await sleep(50)
    }
  }

  /**
   * Seals a request for `candidates` and submits it over its own client stream, as the SDK does but with no
   * client-side timer of its own: whatever ends it, the coordinator decided. Resolves with its last message's code.
   */
  async function submit(
    name: string,
    candidates: NodeInfo[],
    timeoutMs?: number,
  ): Promise<{ ended: Promise<Ended>; channel: MessageChannel<typeof COORDINATOR_TO_CLIENT, ClientToCoordinator> }> {
    const body = encodeRequestBody({
      messages: [{ role: 'user', content: name }],
      maxTokens: 8,
      temperature: 0,
      createdAtMs: Date.now(),
      nonce: randomBytes(16),
    })
    const header: RequestHeader = {
      model: 'lull-tiny',
      maxTokens: 8,
      sizeBucket: body.byteLength,
      candidates: candidates.map((node) => node.nodeId),
      priority: 0,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    }
    const { sealed } = await sealRequest(
      body,
      candidates.map((node) => ({ nodeId: node.nodeId, publicKey: node.certificate.hpkePublicKey })),
      encodeHeaderAad(header),
    )
    const stream = await raw.dialProtocol(multiaddr(network.address), CLIENT_PROTOCOL)
    const channel = new MessageChannel<typeof COORDINATOR_TO_CLIENT, ClientToCoordinator>(stream, {
      inbound: COORDINATOR_TO_CLIENT,
    })
    await channel.send({ type: 'submit', requestId: createRequestId(), header, sealed })
    const ended = (async () => {
      let last: CoordinatorToClient | undefined
      for await (const received of channel) {
        if (!received.ok) break
        last = received.message
        if (last.type === 'error' || last.type === 'end') break
      }
      const ending = { name, code: last?.type === 'error' ? last.code : (last?.type ?? 'closed') }
      endings.push(ending)
      return ending
    })()
    return { ended, channel }
  }

  const queued = () =>
    network.coordinator.status().totals.queued.find((entry) => entry.modelId === 'lull-tiny')?.depth ?? 0

  it('ends a request whose deadline passes while it waits with deadline-exceeded, and never dispatches it', async () => {
    const node = await scriptedNode('hold')
    const [info] = (await catalogue(1)) as [NodeInfo]
    await submit('takes the only slot', [info])
    await node.waitForDispatch()
    const waiting = await submit('waits past its deadline', [info], 300)
    await until(() => queued() === 1, 'the second request to queue')
    expect(await waiting.ended).toMatchObject({ code: 'deadline-exceeded' })
    expect(queued()).toBe(0)
    expect(node.dispatches).toHaveLength(1)
    expect(dispatchedIds).toHaveLength(1)
    // No deadline: the first request is still running.
    expect(endings.map((ending) => ending.name)).toEqual(['waits past its deadline'])
  })

  it('cancels a running request on its node when its deadline passes', async () => {
    const node = await scriptedNode('hold')
    const [info] = (await catalogue(1)) as [NodeInfo]
    const running = await submit('runs past its deadline', [info], 300)
    const dispatch = await node.waitForDispatch()
    expect(await running.ended).toMatchObject({ code: 'deadline-exceeded' })
    await until(() => cancelsToNodes.length > 0, 'the cancel to reach the node')
    expect(cancelsToNodes).toEqual([dispatch.requestId])
    // Its slot is free again: the next request is dispatched at once.
    await submit('next', [info])
    await until(() => node.dispatches.length === 2, 'the next request to be dispatched')
  })

  it('keeps the wait budget across a failover instead of restarting it', async () => {
    // The coordinator lets a request wait 2 s in all. X waits ~1.6 s for its first node, fails there before its
    // first token, and waits again for the other (busy) node: it has ~0.4 s of budget left. Y, queued 1 s after X,
    // has its whole budget. X must end first; with the budget restarted on failover it would outlast Y.
    const busy = await scriptedNode('hold')
    const failing = await scriptedNode('hold')
    failing.state = 'paused'
    failing.heartbeat()
    const infos = await catalogue(2)
    const busyInfo = infos.find((info) => info.nodeId === busy.nodeId) as NodeInfo
    const failingInfo = infos.find((info) => info.nodeId === failing.nodeId) as NodeInfo
    await submit('occupies the busy node', [busyInfo])
    await busy.waitForDispatch()
    const x = await submit('X', [failingInfo, busyInfo])
    await until(() => queued() === 1, 'X to queue')
    await sleep(1_000)
    const y = await submit('Y', [busyInfo])
    await until(() => queued() === 2, 'Y to queue')
    await sleep(600)
    // The paused node serves again, takes X, and fails it with a retryable error before its first token.
    failing.behaviour = { error: 'engine-failed' }
    failing.state = 'serving'
    failing.heartbeat()
    await until(() => failing.dispatches.length === 1, 'X to be dispatched to the failing node')
    await Promise.all([x.ended, y.ended])
    expect(endings).toEqual([
      { name: 'X', code: 'no-capacity' },
      { name: 'Y', code: 'no-capacity' },
    ])
    const explained = network.coordinator.decisions.explain(failing.dispatches[0]?.requestId ?? '')
    expect(explained?.decisions.map((decision) => decision.event)).toEqual(['queued', 'placed', 'failover', 'expired'])
  })
})
