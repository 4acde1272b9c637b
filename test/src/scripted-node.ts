import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import {
  COORDINATOR_TO_NODE,
  createLullHost,
  type DispatchMessage,
  type ErrorCode,
  encodeHeaderAad,
  encodeResponsePiece,
  generateX25519KeyPair,
  loadOrCreateIdentity,
  MessageChannel,
  NODE_PROTOCOL,
  type NodeState,
  type NodeToCoordinator,
  openRequest,
  ResponseSealer,
  signNodeCertificate,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'

/**
 * What a scripted node does with a dispatch:
 * - `hold`: nothing (it keeps the request, like a node stuck before its first token);
 * - `hang`: nothing, and it stops heartbeating (a hung machine; the coordinator should evict it);
 * - `answer`: opens the request (it is a real recipient) and answers {@link SCRIPTED_ANSWER} in one sealed chunk;
 * - `first-chunk-then-hold`: sends one real sealed chunk of text, then nothing;
 * - `{ endAfterMs }`: answers like `answer`, but sends its `end` this long after the final chunk;
 * - `final-chunk-then-leave`: sends the whole answer as its final sealed chunk, then closes its link without `end`;
 * - `{ error }`: reports that error for the request.
 */
export type ScriptedBehaviour =
  | 'hold'
  | 'hang'
  | 'answer'
  | 'first-chunk-then-hold'
  | 'final-chunk-then-leave'
  | { endAfterMs: number }
  | { error: ErrorCode }

export const SCRIPTED_ANSWER = 'a scripted answer'
export const SCRIPTED_PARTIAL = 'the first words '
/** The tokens the partial chunk says it holds (a real node counts its tokens on each chunk). */
export const SCRIPTED_PARTIAL_TOKENS = 3

export interface ScriptedNodeOptions {
  coordinator: string
  /** The digest the certificate names (copy a real node's for a catalogue that looks uniform). */
  modelDigest: string
  modelId?: string
  /** @default 64: more free slots than real test nodes, so the scheduler prefers this node. */
  slots?: number
  behaviour: ScriptedBehaviour
  /** Heartbeat period; none when omitted. */
  heartbeatMs?: number
}

/**
 * A node with a real identity and a real certified HPKE key, speaking NODE_PROTOCOL from a script: lets tests put
 * the coordinator in situations a real node only reaches by chance (lost before its first token, paused, hung).
 */
export class ScriptedNode {
  readonly nodeId: string
  readonly dispatches: DispatchMessage[] = []
  /** Request ids the coordinator sent `cancel` for. */
  readonly cancels: string[] = []
  behaviour: ScriptedBehaviour
  state: NodeState = 'serving'
  readonly #host: Libp2p
  readonly #channel: MessageChannel<typeof COORDINATOR_TO_NODE, NodeToCoordinator>
  readonly #secretKey: Uint8Array
  readonly #dataDir: string
  readonly #waiters: Array<(dispatch: DispatchMessage) => void> = []
  #heartbeat: NodeJS.Timeout | undefined

  private constructor(init: {
    host: Libp2p
    channel: MessageChannel<typeof COORDINATOR_TO_NODE, NodeToCoordinator>
    secretKey: Uint8Array
    dataDir: string
    behaviour: ScriptedBehaviour
  }) {
    this.#host = init.host
    this.nodeId = init.host.peerId.toString()
    this.#channel = init.channel
    this.#secretKey = init.secretKey
    this.#dataDir = init.dataDir
    this.behaviour = init.behaviour
  }

  static async start(options: ScriptedNodeOptions): Promise<ScriptedNode> {
    const dataDir = await mkdtemp(join(tmpdir(), 'lull-scripted-'))
    const privateKey = await loadOrCreateIdentity(dataDir)
    const host = await createLullHost({ privateKey })
    const nodeId = host.peerId.toString()
    const { secretKey, publicKey } = generateX25519KeyPair()
    const nowMs = Date.now()
    const certificate = await signNodeCertificate(
      {
        nodeId,
        hpkePublicKey: publicKey,
        modelId: options.modelId ?? 'lull-tiny',
        modelDigest: options.modelDigest,
        hardware: {
          os: 'linux',
          arch: 'x64',
          cpuModel: 'scripted',
          cpuCores: 1,
          ramTotalBytes: 1024 ** 3,
          gpu: 'none',
          vramTotalBytes: 0,
        },
        notBeforeMs: nowMs - 60_000,
        notAfterMs: nowMs + 60 * 60_000,
      },
      privateKey,
    )
    const stream = await host.dialProtocol(multiaddr(options.coordinator), NODE_PROTOCOL)
    const channel = new MessageChannel<typeof COORDINATOR_TO_NODE, NodeToCoordinator>(stream, {
      inbound: COORDINATOR_TO_NODE,
    })
    const node = new ScriptedNode({ host, channel, secretKey, dataDir, behaviour: options.behaviour })
    await channel.send({
      type: 'register',
      certificate,
      slots: options.slots ?? 64,
      benchmark: { prefillTokensPerSecond: 1000, decodeTokensPerSecond: 100 },
      agent: 'scripted-node',
    })
    const registered = Promise.withResolvers<void>()
    void node.#serve(registered)
    await registered.promise
    if (options.heartbeatMs !== undefined) {
      node.#heartbeat = setInterval(() => node.heartbeat(), options.heartbeatMs)
    }
    return node
  }

  /** Sends a heartbeat with the current {@link state}. */
  heartbeat(): void {
    this.#channel.trySend({ type: 'heartbeat', busySlots: 0, state: this.state })
  }

  /** Resolves with the next dispatch (or the first, if one already came). */
  waitForDispatch(): Promise<DispatchMessage> {
    const first = this.dispatches[0]
    if (first !== undefined) return Promise.resolve(first)
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Drops the link at once, as a crash would: the coordinator sees the link close. */
  abortLink(): void {
    this.#stopHeartbeats()
    this.#channel.abort(new Error('scripted node crashed'))
  }

  async stop(): Promise<void> {
    this.#stopHeartbeats()
    this.#channel.abort(new Error('scripted node stopping'))
    await this.#host.stop()
    await rm(this.#dataDir, { recursive: true, force: true })
  }

  #stopHeartbeats(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
  }

  async #serve(registered: PromiseWithResolvers<void>): Promise<void> {
    try {
      for await (const received of this.#channel) {
        if (!received.ok) continue
        const message = received.message
        if (message.type === 'registered') registered.resolve()
        else if (message.type === 'cancel') this.cancels.push(message.requestId)
        else if (message.type === 'error') registered.reject(new Error(`registration refused: ${message.message}`))
        else if (message.type === 'dispatch' || message.type === 'dispatch-batch') {
          const dispatches: DispatchMessage[] =
            message.type === 'dispatch'
              ? [message]
              : message.requests.map((request) => ({ type: 'dispatch', ...request }))
          for (const dispatch of dispatches) {
            this.dispatches.push(dispatch)
            for (const waiter of this.#waiters.splice(0)) waiter(dispatch)
            await this.#act(dispatch)
          }
        }
      }
    } catch {
      // The link was aborted: the script ends.
    }
    registered.reject(new Error('the link closed before registration'))
  }

  async #act(dispatch: DispatchMessage): Promise<void> {
    const { behaviour } = this
    const { requestId } = dispatch
    if (behaviour === 'hold') return
    if (behaviour === 'hang') {
      this.#stopHeartbeats()
      return
    }
    if (typeof behaviour === 'object' && 'error' in behaviour) {
      this.#channel.trySend({ type: 'error', requestId, code: behaviour.error, message: 'scripted failure' })
      return
    }
    const { contentKey } = await openRequest(
      dispatch.sealed,
      this.nodeId,
      this.#secretKey,
      encodeHeaderAad(dispatch.header),
    )
    const sealer = new ResponseSealer(contentKey)
    if (behaviour === 'first-chunk-then-hold') {
      const piece = { text: SCRIPTED_PARTIAL, outputTokens: SCRIPTED_PARTIAL_TOKENS }
      const data = sealer.seal(encodeResponsePiece(piece), false)
      this.#channel.trySend({ type: 'chunk', requestId, data })
      return
    }
    const usage = { promptTokens: 3, outputTokens: 3 }
    const data = sealer.seal(encodeResponsePiece({ text: SCRIPTED_ANSWER, finish: { reason: 'stop', ...usage } }), true)
    this.#channel.trySend({ type: 'chunk', requestId, data, final: true })
    if (behaviour === 'final-chunk-then-leave') {
      // Closed after the chunk on the same stream: the coordinator reads the chunk, then sees the link go.
      this.#stopHeartbeats()
      await this.#channel.close()
      return
    }
    if (typeof behaviour === 'object') await new Promise((resolve) => setTimeout(resolve, behaviour.endAfterMs))
    this.#channel.trySend({ type: 'end', requestId, usage })
  }
}
