import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import {
  CLIENT_PROTOCOL,
  type CLIENT_TO_COORDINATOR,
  type CoordinatorToClient,
  createLullHost,
  createRequestId,
  type EndMessage,
  ErrorCode,
  type ErrorMessage,
  type FrameObserver,
  type LullError,
  loadOrCreateIdentity,
  MAX_CLIENT_STREAMS_PER_CONNECTION,
  MAX_NODE_LINK_STREAMS,
  type MessageChannel,
  NODE_PROTOCOL,
  type NodeCertificate,
  type RegisterMessage,
  type SubmitMessage,
  verifyNodeCertificate,
} from '@lull/proto'
import { handleClientStream } from './client-session.js'
import {
  DEFAULT_LISTEN_ADDRESS,
  EVICTION_INTERVAL_MS,
  MAX_QUEUED_REQUESTS_PER_MODEL,
  NODE_STALE_AFTER_MS,
  QUEUE_TIMEOUT_MS,
} from './constants.js'
import { createLogger, type Logger } from './logger.js'
import { handleNodeStream } from './node-link.js'
import { type NodeChannel, type NodeEntry, Registry } from './registry.js'
import { placeRequest } from './scheduler.js'
import { errorReply, lullError } from './wire-errors.js'

export type ClientChannel = MessageChannel<typeof CLIENT_TO_COORDINATOR, CoordinatorToClient>

export interface CoordinatorOptions {
  /** @default ['/ip4/127.0.0.1/tcp/4710'] */
  listen?: string[]
  /** Where the identity key lives, so the coordinator's address survives restarts. A fresh identity when omitted. */
  dataDir?: string
  /** Open mode: any node may join and any client may submit. For local networks only. */
  open: boolean
  logger?: Logger
  /** Sees every frame the coordinator sends or receives (used to audit that no payload crosses it in the clear). */
  frameObserver?: FrameObserver
}

/** A request the coordinator is routing. It never holds a key that opens `sealed`. */
interface Job {
  /** The opaque id the node sees. */
  id: string
  clientRequestId: string
  submit: SubmitMessage
  client: ClientChannel
  node: NodeEntry | undefined
  status: 'queued' | 'running' | 'finished'
  cancelled: boolean
  queueTimer: NodeJS.Timeout | undefined
  submittedAtMs: number
}

/**
 * The coordinator: a libp2p host that registers nodes, places each sealed request on one of its candidate nodes
 * and relays the sealed answer back. It sees routing metadata only.
 */
export class Coordinator {
  readonly host: Libp2p
  readonly log: Logger
  readonly registry = new Registry()
  readonly frameObserver: FrameObserver | undefined
  private readonly jobs = new Map<string, Job>()
  private readonly queues = new Map<string, Job[]>()
  private readonly evictionTimer: NodeJS.Timeout
  private stopped = false

  private constructor(host: Libp2p, options: CoordinatorOptions) {
    this.host = host
    this.log = options.logger ?? createLogger()
    this.frameObserver = options.frameObserver
    this.evictionTimer = setInterval(() => this.evictStaleNodes(), EVICTION_INTERVAL_MS)
    this.evictionTimer.unref()
  }

  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    if (!options.open) {
      throw new Error(
        'join tokens and API keys are not available yet: start with --open (any node may join and any client may submit; use on a trusted local network only)',
      )
    }
    const privateKey = options.dataDir === undefined ? undefined : await loadOrCreateIdentity(options.dataDir)
    const host = await createLullHost({
      listen: options.listen ?? [DEFAULT_LISTEN_ADDRESS],
      ...(privateKey === undefined ? {} : { privateKey }),
    })
    const coordinator = new Coordinator(host, options)
    await host.handle(NODE_PROTOCOL, (stream, connection) => coordinator.onNodeStream(stream, connection), {
      maxInboundStreams: MAX_NODE_LINK_STREAMS,
      maxOutboundStreams: 1,
    })
    await host.handle(CLIENT_PROTOCOL, (stream) => coordinator.onClientStream(stream), {
      maxInboundStreams: MAX_CLIENT_STREAMS_PER_CONNECTION,
      maxOutboundStreams: 1,
    })
    coordinator.log.info({ peerId: host.peerId.toString(), addresses: coordinator.multiaddrs }, 'coordinator listening')
    return coordinator
  }

  /** Dialable addresses, each ending in `/p2p/<peer id>`. */
  get multiaddrs(): string[] {
    return this.host.getMultiaddrs().map((address) => address.toString())
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.evictionTimer)
    for (const job of this.jobs.values()) if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    await this.host.stop()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  private onNodeStream(stream: Stream, connection: Connection): void {
    handleNodeStream(this, stream, connection.remotePeer.toString()).catch((error: unknown) => {
      this.log.warn({ err: errorSummary(error) }, 'node link failed')
    })
  }

  private onClientStream(stream: Stream): void {
    handleClientStream(this, stream).catch((error: unknown) => {
      this.log.warn({ err: errorSummary(error) }, 'client stream failed')
    })
  }

  /** Checks a node's registration; on success the node is in the registry and may get work. */
  async registerNode(channel: NodeChannel, peerId: string, message: RegisterMessage): Promise<NodeEntry | LullError> {
    const { certificate } = message
    const valid = await verifyNodeCertificate(certificate, { nowMs: Date.now(), nodeId: peerId })
    if (!valid) {
      return lullError(
        ErrorCode.InvalidCertificate,
        'the certificate is not valid for this node: it must be signed by the connecting peer key, for its model, and within its validity window',
      )
    }
    const nowMs = Date.now()
    const entry: NodeEntry = {
      nodeId: peerId,
      modelId: certificate.modelId,
      certificate,
      slots: message.slots,
      inFlight: 0,
      benchmark: message.benchmark,
      state: 'serving',
      lastSeenMs: nowMs,
      registeredAtMs: nowMs,
      channel,
    }
    const previous = this.registry.add(entry)
    if (previous !== undefined) {
      this.failNodeJobs(previous, 'the node reconnected')
      previous.channel.abort(new Error('replaced by a newer link from the same node'))
    }
    this.log.info({ nodeId: peerId, model: entry.modelId, slots: entry.slots }, 'node registered')
    this.drainQueue(entry.modelId)
    return entry
  }

  /**
   * Takes a registered node's rotated certificate: it must verify for the same node, model and digest. The old
   * certificate is replaced in the catalogue; the node keeps its old key open for clients that sealed to it.
   */
  async renewCertificate(entry: NodeEntry, certificate: NodeCertificate): Promise<LullError | undefined> {
    const valid =
      certificate.modelId === entry.modelId &&
      certificate.modelDigest === entry.certificate.modelDigest &&
      (await verifyNodeCertificate(certificate, { nowMs: Date.now(), nodeId: entry.nodeId }))
    if (!valid) {
      this.log.info({ nodeId: entry.nodeId }, 'rotated certificate refused')
      return lullError(
        ErrorCode.InvalidCertificate,
        'the new certificate must be signed by this node for the same model and digest, and be valid now; the old one stays in use',
      )
    }
    entry.certificate = certificate
    this.log.info({ nodeId: entry.nodeId, notAfterMs: certificate.notAfterMs }, 'node key rotated')
    return undefined
  }

  /** A node's link closed or went stale: its running requests end with a retryable `node-lost`. */
  nodeGone(entry: NodeEntry, reason: string): void {
    if (!this.registry.remove(entry)) return
    this.log.info({ nodeId: entry.nodeId, reason }, 'node left')
    this.failNodeJobs(entry, reason)
    this.drainQueue(entry.modelId)
  }

  nodeStateChanged(entry: NodeEntry): void {
    if (entry.state === 'serving') this.drainQueue(entry.modelId)
  }

  catalogue() {
    return this.registry.catalogue()
  }

  /** Places a submitted request, queues it, or refuses it. */
  submit(client: ClientChannel, submit: SubmitMessage): Job {
    const job: Job = {
      id: createRequestId(),
      clientRequestId: submit.requestId,
      submit,
      client,
      node: undefined,
      status: 'queued',
      cancelled: false,
      queueTimer: undefined,
      submittedAtMs: Date.now(),
    }
    this.jobs.set(job.id, job)
    const placement = placeRequest(this.registry, submit.header)
    if (placement.kind === 'node') this.dispatch(job, placement.node)
    else if (placement.kind === 'refuse') this.finish(job, errorReply(placement.error, job.clientRequestId))
    else this.enqueue(job)
    return job
  }

  /** The client cancelled or went away. A running request's node is told to stop. */
  cancel(job: Job): void {
    if (job.status === 'finished' || job.cancelled) return
    job.cancelled = true
    if (job.status === 'queued') {
      this.removeFromQueue(job)
      this.finish(job, undefined)
      return
    }
    job.node?.channel.trySend({ type: 'cancel', requestId: job.id })
    this.log.debug({ requestId: job.id }, 'cancel forwarded to node')
  }

  relayChunk(node: NodeEntry, requestId: string, data: Uint8Array): void {
    const job = this.runningJobOf(node, requestId)
    if (job === undefined || job.cancelled) return
    job.client.trySend({ type: 'chunk', requestId: job.clientRequestId, data })
  }

  finishFromNode(node: NodeEntry, message: EndMessage): void {
    const job = this.runningJobOf(node, message.requestId)
    if (job === undefined) return
    this.log.debug(
      { requestId: job.id, nodeId: node.nodeId, ...message.usage, durationMs: Date.now() - job.submittedAtMs },
      'request finished',
    )
    this.finish(job, { type: 'end', requestId: job.clientRequestId, usage: message.usage })
  }

  failFromNode(node: NodeEntry, message: ErrorMessage): void {
    if (message.requestId === undefined) {
      this.log.warn({ nodeId: node.nodeId, code: message.code }, 'node reported an error')
      return
    }
    const job = this.runningJobOf(node, message.requestId)
    if (job === undefined) return
    this.log.debug({ requestId: job.id, nodeId: node.nodeId, code: message.code }, 'request failed on node')
    this.finish(job, { ...message, requestId: job.clientRequestId })
  }

  private runningJobOf(node: NodeEntry, requestId: string): Job | undefined {
    const job = this.jobs.get(requestId)
    // A node may only speak for requests dispatched to it.
    return job !== undefined && job.node === node && job.status === 'running' ? job : undefined
  }

  private dispatch(job: Job, node: NodeEntry): void {
    job.status = 'running'
    job.node = node
    node.inFlight++
    const { header, sealed } = job.submit
    if (!node.channel.trySend({ type: 'dispatch', requestId: job.id, header, sealed })) {
      this.finish(job, errorReply(lullError(ErrorCode.NodeLost, 'the chosen node went away'), job.clientRequestId))
      return
    }
    job.client.trySend({ type: 'dispatched', requestId: job.clientRequestId, nodeId: node.nodeId })
    this.log.debug(
      { requestId: job.id, nodeId: node.nodeId, model: header.model, sizeBucket: header.sizeBucket },
      'dispatched',
    )
  }

  /** Ends a job: the last message to the client (if any), slot and bookkeeping released, the client stream closed. */
  private finish(job: Job, last: CoordinatorToClient | undefined): void {
    if (job.status === 'finished') return
    const wasRunning = job.status === 'running'
    job.status = 'finished'
    this.jobs.delete(job.id)
    if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    if (last !== undefined) job.client.trySend(last)
    void job.client.close()
    if (wasRunning && job.node !== undefined) {
      job.node.inFlight--
      this.drainQueue(job.node.modelId)
    }
  }

  private failNodeJobs(node: NodeEntry, reason: string): void {
    for (const job of [...this.jobs.values()]) {
      if (job.node !== node || job.status !== 'running') continue
      const error = lullError(ErrorCode.NodeLost, `the node running this request went away (${reason}); retry it`)
      this.finish(job, errorReply(error, job.clientRequestId))
    }
  }

  private enqueue(job: Job): void {
    const queue = this.queues.get(job.submit.header.model) ?? []
    if (queue.length >= MAX_QUEUED_REQUESTS_PER_MODEL) {
      const error = lullError(ErrorCode.NoCapacity, 'the queue for this model is full; retry later')
      this.finish(job, errorReply(error, job.clientRequestId))
      return
    }
    queue.push(job)
    this.queues.set(job.submit.header.model, queue)
    job.queueTimer = setTimeout(() => {
      this.removeFromQueue(job)
      const error = lullError(
        ErrorCode.NoCapacity,
        `no candidate node had a free slot within ${QUEUE_TIMEOUT_MS} ms; retry later`,
      )
      this.finish(job, errorReply(error, job.clientRequestId))
    }, QUEUE_TIMEOUT_MS)
  }

  private removeFromQueue(job: Job): void {
    const queue = this.queues.get(job.submit.header.model)
    const index = queue?.indexOf(job) ?? -1
    if (queue !== undefined && index >= 0) queue.splice(index, 1)
  }

  /** Places waiting requests, oldest first, on slots that have come free. */
  private drainQueue(modelId: string): void {
    const queue = this.queues.get(modelId)
    if (queue === undefined || queue.length === 0) return
    for (const job of [...queue]) {
      const placement = placeRequest(this.registry, job.submit.header)
      if (placement.kind === 'wait') continue
      this.removeFromQueue(job)
      if (placement.kind === 'node') this.dispatch(job, placement.node)
      else this.finish(job, errorReply(placement.error, job.clientRequestId))
    }
  }

  private evictStaleNodes(): void {
    const cutoff = Date.now() - NODE_STALE_AFTER_MS
    for (const node of [...this.registry.all()]) {
      if (node.lastSeenMs >= cutoff) continue
      node.channel.abort(new Error('no heartbeat'))
      this.nodeGone(node, 'no heartbeat')
    }
  }
}

export type { Job }

function errorSummary(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: 'unknown', message: String(error) }
}
