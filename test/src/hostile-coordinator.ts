import type { Libp2p, Stream } from '@libp2p/interface'
import {
  type CatalogueMessage,
  CLIENT_PROTOCOL,
  CLIENT_TO_COORDINATOR,
  type CoordinatorToClient,
  type CoordinatorToNode,
  createLullHost,
  createRequestId,
  type DispatchMessage,
  type ErrorMessage,
  MessageChannel,
  NODE_PROTOCOL,
  NODE_TO_COORDINATOR,
  type RegisterMessage,
} from '@lull/proto'

/**
 * How the hostile coordinator treats traffic:
 * - `honest`: relays like a real coordinator;
 * - `flip-bit`: flips one bit in every sealed chunk it relays;
 * - `drop-final`: holds each answer back until it ends, then relays all chunks but the last (the final one);
 * - `misroute`: sends each request to a registered node that is not one of its candidates.
 */
/** `drop-end`: relays every chunk, then closes the client's stream instead of relaying `end` (as a crash would). */
export type HostileMode = 'honest' | 'flip-bit' | 'drop-final' | 'drop-end' | 'misroute'

interface RegisteredNode {
  nodeId: string
  register: RegisterMessage
  channel: MessageChannel<typeof NODE_TO_COORDINATOR, CoordinatorToNode>
}

interface Relay {
  client: MessageChannel<typeof CLIENT_TO_COORDINATOR, CoordinatorToClient>
  clientRequestId: string
  held: Uint8Array[]
}

/** A sealed chunk a node sent, as the coordinator received it. */
export interface ObservedChunk {
  /** The coordinator's request id (the one in the dispatch), not the client's. */
  requestId: string
  nodeId: string
  data: Uint8Array
}

/**
 * A coordinator that speaks Lull's protocols but does not play fair: it lets tests check that nodes and clients
 * hold the privacy contract against the party in the middle. It also records every dispatch it sends, every
 * sealed chunk and error nodes send it, can replay a recorded dispatch to any node, and can write raw bytes onto a
 * node's link.
 */
export class HostileCoordinator {
  mode: HostileMode = 'honest'
  readonly nodes = new Map<string, RegisteredNode>()
  /** Error messages received from nodes, in order. */
  readonly nodeErrors: ErrorMessage[] = []
  /** Every dispatch sent to a node (header and sealed request, exactly as the node received them), in order. */
  readonly dispatches: Array<{ nodeId: string; message: DispatchMessage }> = []
  /** Every sealed chunk nodes sent, relayed or not, in order. */
  readonly chunks: ObservedChunk[] = []
  readonly #relays = new Map<string, Relay>()
  readonly host: Libp2p

  private constructor(host: Libp2p) {
    this.host = host
  }

  static async start(): Promise<HostileCoordinator> {
    const host = await createLullHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const hostile = new HostileCoordinator(host)
    await host.handle(NODE_PROTOCOL, (stream, connection) => {
      hostile.#serveNode(stream, connection.remotePeer.toString()).catch(() => {
        // A node link that resets just ends; the node reconnects.
      })
    })
    await host.handle(CLIENT_PROTOCOL, (stream) => {
      hostile.#serveClient(stream).catch(() => {
        // A client that resets its stream just goes away.
      })
    })
    return hostile
  }

  get address(): string {
    return this.host.getMultiaddrs()[0]?.toString() as string
  }

  /** The last dispatch sent to a node, or `undefined` before the first. */
  get lastDispatch(): DispatchMessage | undefined {
    return this.dispatches.at(-1)?.message
  }

  /** Chunks a node sent for one request id (the coordinator's). */
  chunksFor(requestId: string): ObservedChunk[] {
    return this.chunks.filter((chunk) => chunk.requestId === requestId)
  }

  /**
   * Sends a captured dispatch to `nodeId` again, unchanged but under a fresh request id (as a replaying coordinator
   * would: the node ignores an id it is already running). What the node answers is recorded, not relayed to any
   * client. Returns the new request id.
   */
  redispatch(nodeId: string, dispatch: DispatchMessage): string {
    const node = this.nodes.get(nodeId)
    if (node === undefined) throw new Error(`node ${nodeId} is not registered`)
    const message: DispatchMessage = { ...dispatch, requestId: createRequestId() }
    this.dispatches.push({ nodeId, message })
    if (!node.channel.trySend(message)) throw new Error(`the link to node ${nodeId} is closed`)
    return message.requestId
  }

  /** Writes raw bytes onto a node's link, as if they were frames. */
  sendRawToNode(nodeId: string, bytes: Uint8Array): void {
    const node = this.nodes.get(nodeId)
    if (node === undefined) throw new Error(`node ${nodeId} is not registered`)
    node.channel.stream.send(bytes)
  }

  async waitForNodes(count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.nodes.size < count) {
      if (Date.now() > deadline) throw new Error(`${count} nodes did not register within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  async waitForNodeError(predicate: (error: ErrorMessage) => boolean, timeoutMs = 10_000): Promise<ErrorMessage> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.nodeErrors.find(predicate)
      if (found !== undefined) return found
      if (Date.now() > deadline) throw new Error('the node sent no such error')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async stop(): Promise<void> {
    await this.host.stop()
  }

  async #serveNode(stream: Stream, peerId: string): Promise<void> {
    const channel = new MessageChannel<typeof NODE_TO_COORDINATOR, CoordinatorToNode>(stream, {
      inbound: NODE_TO_COORDINATOR,
    })
    try {
      for await (const received of channel) {
        if (!received.ok) continue
        const message = received.message
        switch (message.type) {
          case 'register':
            this.nodes.set(peerId, { nodeId: peerId, register: message, channel })
            await channel.send({ type: 'registered', nodeId: peerId })
            break
          case 'chunk': {
            this.chunks.push({ requestId: message.requestId, nodeId: peerId, data: message.data })
            const relay = this.#relays.get(message.requestId)
            if (relay === undefined) break
            if (this.mode === 'drop-final') relay.held.push(message.data)
            else
              relay.client.trySend({
                type: 'chunk',
                requestId: relay.clientRequestId,
                data: this.#tamper(message.data),
              })
            break
          }
          case 'end': {
            const relay = this.#relays.get(message.requestId)
            if (relay === undefined) break
            for (const data of relay.held.slice(0, -1))
              relay.client.trySend({ type: 'chunk', requestId: relay.clientRequestId, data })
            if (this.mode !== 'drop-end') {
              relay.client.trySend({ type: 'end', requestId: relay.clientRequestId, usage: message.usage })
            }
            await relay.client.close()
            break
          }
          case 'error': {
            this.nodeErrors.push(message)
            const relay = message.requestId === undefined ? undefined : this.#relays.get(message.requestId)
            if (relay === undefined) break
            relay.client.trySend({ ...message, requestId: relay.clientRequestId })
            await relay.client.close()
            break
          }
          case 'heartbeat':
            break
        }
      }
    } finally {
      if (this.nodes.get(peerId)?.channel === channel) this.nodes.delete(peerId)
    }
  }

  async #serveClient(stream: Stream): Promise<void> {
    const client = new MessageChannel<typeof CLIENT_TO_COORDINATOR, CoordinatorToClient>(stream, {
      inbound: CLIENT_TO_COORDINATOR,
    })
    for await (const received of client) {
      if (!received.ok) continue
      const message = received.message
      if (message.type === 'catalogue-request') {
        await client.send(this.#catalogue())
        await client.close()
        return
      }
      if (message.type !== 'submit') continue
      const candidates = new Set(message.header.candidates)
      const target = [...this.nodes.values()].find((node) => candidates.has(node.nodeId) === (this.mode !== 'misroute'))
      if (target === undefined) {
        client.trySend({
          type: 'error',
          requestId: message.requestId,
          code: 'no-capacity',
          message: `no node to route to in mode ${this.mode}`,
        })
        await client.close()
        return
      }
      const requestId = createRequestId()
      this.#relays.set(requestId, { client, clientRequestId: message.requestId, held: [] })
      client.trySend({ type: 'dispatched', requestId: message.requestId, nodeId: target.nodeId })
      const dispatch: DispatchMessage = { type: 'dispatch', requestId, header: message.header, sealed: message.sealed }
      this.dispatches.push({ nodeId: target.nodeId, message: dispatch })
      target.channel.trySend(dispatch)
    }
  }

  #tamper(data: Uint8Array): Uint8Array {
    if (this.mode !== 'flip-bit') return data
    const copy = Uint8Array.from(data)
    copy[Math.floor(copy.length / 2)] = (copy[Math.floor(copy.length / 2)] as number) ^ 0x01
    return copy
  }

  #catalogue(): CatalogueMessage {
    const byModel = new Map<string, CatalogueMessage['models'][number]['nodes']>()
    for (const node of this.nodes.values()) {
      const { certificate, slots, benchmark } = node.register
      const list = byModel.get(certificate.modelId) ?? []
      list.push({ nodeId: node.nodeId, certificate, slots, busySlots: 0, benchmark })
      byModel.set(certificate.modelId, list)
    }
    return { type: 'catalogue', models: [...byModel].map(([modelId, nodes]) => ({ modelId, nodes })) }
  }
}
