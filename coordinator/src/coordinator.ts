import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import {
  ADMIN_PROTOCOL,
  CLIENT_PROTOCOL,
  type CoordinatorToClient,
  createLullHost,
  type EndMessage,
  ErrorCode,
  type ErrorMessage,
  type FrameObserver,
  isRetryableCode,
  LullError,
  loadOrCreateIdentity,
  MAX_CLIENT_STREAMS_PER_CONNECTION,
  MAX_NODE_LINK_STREAMS,
  NODE_PROTOCOL,
  type NodeCertificate,
  type RegisterMessage,
  type StatusMessage,
  type SubmitMessage,
} from '@lull/proto'
import { Accounts } from './accounts/admission.js'
import { AccountsStore } from './accounts/store.js'
import { handleAdminStream } from './admin-session.js'
import { handleClientStream } from './client-session.js'
import {
  DEFAULT_LISTEN_ADDRESS,
  EVICTION_INTERVAL_MS,
  MAX_QUEUED_REQUESTS_PER_MODEL,
  NODE_STALE_AFTER_MS,
  QUEUE_TIMEOUT_MS,
} from './constants.js'
import { DecisionLog } from './decision-log.js'
import { DispatchBatcher } from './dispatch-batcher.js'
import { type ClientReplies, clearJobTimers, type Job, newJob } from './job.js'
import { createLogger, type Logger } from './logger.js'
import { type MetricsServer, startMetricsServer } from './metrics-server.js'
import { ModelQueues } from './model-queues.js'
import { NetworkStats } from './network-stats.js'
import { admitNode, checkRenewedCertificate } from './node-admission.js'
import { handleNodeStream } from './node-link.js'
import { operatorStatus } from './operator-status.js'
import { type NodeChannel, type NodeEntry, Registry, recordNodeTtft } from './registry.js'
import { placeRequest } from './scheduler.js'
import { errorReply } from './wire-errors.js'

export interface CoordinatorOptions {
  /** @default ['/ip4/127.0.0.1/tcp/4710'] */
  listen?: string[]
  /**
   * Where the identity key (so the address survives restarts) and the accounts store (API keys, join tokens,
   * balances, usage ledger) live. Required unless `open`; in open mode without it there is a fresh identity and
   * no ledger.
   */
  dataDir?: string
  /**
   * Open mode: any node may join and any client may submit, with no keys, credits or limits. For local networks
   * only. With a data dir, usage is still recorded (client `open`, no credits move).
   */
  open: boolean
  logger?: Logger
  /** Sees every frame the coordinator sends or receives (used to audit that no payload crosses it in the clear). */
  frameObserver?: FrameObserver
  /** Serve Prometheus metrics on 127.0.0.1 at this port (0 picks a free one); none when omitted. */
  metricsPort?: number
  /** A node not heard from for this long is evicted. @default NODE_STALE_AFTER_MS */
  nodeStaleAfterMs?: number
  /**
   * Requests that may wait for a free slot, per model; past it new requests are refused as `overloaded`.
   * @default MAX_QUEUED_REQUESTS_PER_MODEL (1,024)
   */
  maxQueuedRequestsPerModel?: number
  /** How often stale nodes are looked for. @default EVICTION_INTERVAL_MS */
  evictionIntervalMs?: number
  /**
   * How long a request may wait for a free slot, summed over every stretch it spends queued (a failover does not
   * restart it); past it the request ends with `no-capacity`. @default QUEUE_TIMEOUT_MS (30 s)
   */
  queueTimeoutMs?: number
  /** A client's share of a saturated model's queue, relative to others'. @default () => 1 */
  clientWeight?: (clientId: string) => number
  /** Dispatches to one node within this window go out in one message; 0: within one event-loop turn. @default 0 */
  dispatchBatchWindowMs?: number
  /** Most open connections (nodes, clients and admin views together). @default MAX_CONNECTIONS (512) */
  maxConnections?: number
  /** Called with the time (ms, from performance.now()) each placement decision took, for benchmarks. */
  onDecisionTimed?: (durationMs: number) => void
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
  /** Open mode: any node may join, any client submit, and any peer read the admin view. */
  readonly open: boolean
  readonly decisions = new DecisionLog()
  /** API keys, join tokens, admission (rate, quota, credits) and the usage ledger. */
  readonly accounts: Accounts
  /** The Prometheus endpoint, when `metricsPort` was given. */
  metrics: MetricsServer | undefined
  private readonly jobs = new Map<string, Job>()
  private readonly queues: ModelQueues
  private readonly batcher: DispatchBatcher<Job>
  private readonly onDecisionTimed: ((durationMs: number) => void) | undefined
  private readonly evictionTimer: NodeJS.Timeout
  private readonly nodeStaleAfterMs: number
  private stopped = false
  /** Network totals for the admin view. */
  private readonly stats = new NetworkStats()

  private constructor(host: Libp2p, options: CoordinatorOptions, accounts: Accounts) {
    this.host = host
    this.accounts = accounts
    this.log = options.logger ?? createLogger()
    this.frameObserver = options.frameObserver
    this.open = options.open
    this.nodeStaleAfterMs = options.nodeStaleAfterMs ?? NODE_STALE_AFTER_MS
    const queueTimeoutMs = options.queueTimeoutMs ?? QUEUE_TIMEOUT_MS
    this.queues = new ModelQueues({
      maxPerModel: options.maxQueuedRequestsPerModel ?? MAX_QUEUED_REQUESTS_PER_MODEL,
      timeoutMs: queueTimeoutMs,
      ...(options.clientWeight === undefined ? {} : { clientWeight: options.clientWeight }),
      onExpired: (job) => {
        const error = new LullError(
          ErrorCode.NoCapacity,
          `no candidate node had a free slot within ${queueTimeoutMs} ms of waiting; retry later`,
        )
        this.decide(job, 'expired', `waited ${job.queuedMs} ms in the queue in all`)
        this.finish(job, errorReply(error, job.clientRequestId))
      },
    })
    this.onDecisionTimed = options.onDecisionTimed
    this.batcher = new DispatchBatcher<Job>(
      {
        entryOf: (job, node) =>
          job.node === node && job.status === 'running'
            ? { requestId: job.id, header: job.submit.header, sealed: job.submit.sealed }
            : undefined,
        onSendFailed: (jobs, node) => {
          for (const job of jobs) this.nodeFailedJob(job, node, { kind: 'lost', reason: 'the chosen node went away' })
        },
        // The client hears where its request went once it has left, not when it was placed: the dispatch is on
        // the way to the first token, this note is not. A job that failed over before leaving is never announced.
        onSent: (jobs, node) => {
          for (const job of jobs) {
            job.client.trySend({ type: 'dispatched', requestId: job.clientRequestId, nodeId: node.nodeId })
          }
        },
      },
      options.dispatchBatchWindowMs === undefined ? {} : { windowMs: options.dispatchBatchWindowMs },
    )
    this.evictionTimer = setInterval(() => this.evictStaleNodes(), options.evictionIntervalMs ?? EVICTION_INTERVAL_MS)
    this.evictionTimer.unref()
  }

  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    if (!options.open && options.dataDir === undefined) {
      throw new Error(
        'a coordinator that checks API keys and join tokens needs a data dir for its accounts store (--data-dir), or --open for a trusted local network',
      )
    }
    const privateKey = options.dataDir === undefined ? undefined : await loadOrCreateIdentity(options.dataDir)
    const store = options.dataDir === undefined ? undefined : AccountsStore.open(options.dataDir)
    let host: Libp2p
    try {
      host = await createLullHost({
        listen: options.listen ?? [DEFAULT_LISTEN_ADDRESS],
        ...(privateKey === undefined ? {} : { privateKey }),
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      })
    } catch (error) {
      await store?.close()
      throw error
    }
    const coordinator = new Coordinator(host, options, new Accounts(store, options.open))
    await host.handle(NODE_PROTOCOL, (stream, connection) => coordinator.onNodeStream(stream, connection), {
      maxInboundStreams: MAX_NODE_LINK_STREAMS,
      maxOutboundStreams: 1,
    })
    await host.handle(CLIENT_PROTOCOL, (stream, connection) => coordinator.onClientStream(stream, connection), {
      maxInboundStreams: MAX_CLIENT_STREAMS_PER_CONNECTION,
      maxOutboundStreams: 1,
    })
    await host.handle(ADMIN_PROTOCOL, (stream, connection) => coordinator.onAdminStream(stream, connection), {
      maxInboundStreams: 4,
      maxOutboundStreams: 1,
    })
    if (options.metricsPort !== undefined) {
      coordinator.metrics = await startMetricsServer(() => coordinator.status(), { port: options.metricsPort })
      coordinator.log.info({ url: coordinator.metrics.url }, 'metrics served')
    }
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
    for (const job of this.jobs.values()) clearJobTimers(job)
    this.batcher.stop()
    await this.metrics?.close()
    await this.host.stop()
    await this.accounts.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  private onNodeStream(stream: Stream, connection: Connection): void {
    handleNodeStream(this, stream, connection.remotePeer.toString()).catch((error: unknown) => {
      this.log.warn({ err: errorSummary(error) }, 'node link failed')
    })
  }

  private onAdminStream(stream: Stream, connection: Connection): void {
    handleAdminStream(this, stream, connection.remotePeer.toString()).catch((error: unknown) => {
      this.log.warn({ err: errorSummary(error) }, 'admin stream failed')
    })
  }

  private onClientStream(stream: Stream, connection: Connection): void {
    handleClientStream(this, stream, connection.remotePeer.toString()).catch((error: unknown) => {
      this.log.warn({ err: errorSummary(error) }, 'client stream failed')
    })
  }

  /** Checks a node's registration; on success the node is in the registry and may get work. */
  async registerNode(channel: NodeChannel, peerId: string, message: RegisterMessage): Promise<NodeEntry | LullError> {
    const entry = await admitNode(this.accounts, channel, peerId, message)
    if (entry instanceof LullError) return entry
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
    const refused = await checkRenewedCertificate(entry, certificate)
    if (refused !== undefined) {
      this.log.info({ nodeId: entry.nodeId }, 'rotated certificate refused')
      return refused
    }
    entry.certificate = certificate
    this.log.info({ nodeId: entry.nodeId, notAfterMs: certificate.notAfterMs }, 'node key rotated')
    return undefined
  }

  /**
   * A node's link closed or went stale: its running requests that have not relayed a chunk yet move to another
   * candidate; the others end with a retryable `node-lost`.
   */
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
  submit(client: ClientReplies, submit: SubmitMessage, clientId: string): Job {
    const job = newJob(client, submit, clientId, Date.now())
    this.jobs.set(job.id, job)
    // Admission before any dispatch: key, rate limit, quota, credit reservation.
    const refusal = this.accounts.admit({ ...job, header: submit.header }, submit.apiKey, job.submittedAtMs)
    if (refusal !== undefined) {
      this.decide(job, 'refused', refusal.message)
      this.finish(job, errorReply(refusal, job.clientRequestId))
      return job
    }
    const { timeoutMs } = submit.header
    if (timeoutMs !== undefined) job.deadlineTimer = setTimeout(() => this.deadlinePassed(job, timeoutMs), timeoutMs)
    const placement = this.place(job)
    if (placement.kind === 'node') {
      this.decide(job, 'placed', placement.reason, placement.node.nodeId)
      this.dispatch(job, placement.node)
    } else if (placement.kind === 'refuse') {
      this.decide(job, 'refused', placement.error.message)
      this.finish(job, errorReply(placement.error, job.clientRequestId))
    } else {
      this.decide(job, 'queued', placement.reason)
      this.enqueue(job)
    }
    return job
  }

  /** The client cancelled or went away. A running request's node is told to stop. */
  cancel(job: Job): void {
    if (job.status === 'finished' || job.cancelled) return
    job.cancelled = true
    this.decide(job, 'cancelled', `the client cancelled or went away while ${job.status}`)
    if (job.status === 'queued') {
      this.queues.remove(job)
      this.finish(job, undefined)
      return
    }
    if (job.node !== undefined && this.batcher.withdraw(job.node, job)) {
      // It had not left for the node yet: nothing to stop there.
      this.finish(job, undefined)
      return
    }
    job.node?.channel.trySend({ type: 'cancel', requestId: job.id })
    this.log.debug({ requestId: job.id }, 'cancel forwarded to node')
  }

  /**
   * Relays a sealed chunk to the client. The answer's final chunk waits, when a usage record is to be written, until
   * that record is on disk (`finishFromNode`): a client never holds a whole answer whose usage a crash could lose.
   * If the node is lost before its `end`, the held chunk is dropped and the answer resumed (or failed over, when
   * nothing else was relayed).
   */
  relayChunk(node: NodeEntry, requestId: string, data: Uint8Array, final = false): void {
    const job = this.runningJobOf(node, requestId)
    if (job === undefined || job.cancelled) return
    if (final && this.accounts.isAdmitted(job.id)) {
      job.heldFinalChunk = data
      return
    }
    this.forwardChunk(job, node, data)
  }

  private forwardChunk(job: Job, node: NodeEntry, data: Uint8Array): void {
    if (job.chunksRelayed === 0) {
      const nowMs = Date.now()
      this.stats.timeToFirstToken(nowMs - job.submittedAtMs)
      recordNodeTtft(this.registry.countersOf(node.nodeId), nowMs - job.dispatchedAtMs)
    }
    job.chunksRelayed++
    job.client.trySend({ type: 'chunk', requestId: job.clientRequestId, data })
  }

  finishFromNode(node: NodeEntry, message: EndMessage): void {
    const job = this.runningJobOf(node, message.requestId)
    if (job === undefined) return
    if (this.accounts.isAdmitted(job.id)) {
      // The usage record and credit moves are on disk before the client hears `end`.
      job.settling = true
      this.accounts.settle({ ...job, header: job.submit.header }, node.nodeId, message, job.cancelled).then(
        ({ disputed }) => {
          if (disputed !== undefined) {
            this.registry.countersOf(node.nodeId).errors++
            this.log.warn({ requestId: job.id, nodeId: node.nodeId, disputed }, 'usage disputed; no credits moved')
          }
          job.settling = false
          this.finishFromNode(node, message)
        },
        (error: unknown) => {
          this.log.error({ requestId: job.id, err: errorSummary(error) }, 'usage not recorded')
          const failure = new LullError(ErrorCode.Internal, 'the coordinator could not record this request; retry it')
          this.finish(job, errorReply(failure, job.clientRequestId))
        },
      )
      return
    }
    this.log.debug(
      { requestId: job.id, nodeId: node.nodeId, ...message.usage, durationMs: Date.now() - job.submittedAtMs },
      'request finished',
    )
    const counters = this.registry.countersOf(node.nodeId)
    counters.requestsServed++
    counters.outputTokensServed += message.usage.outputTokens
    counters.recentTokens.add(message.usage.outputTokens)
    this.stats.served(message.usage.outputTokens)
    if (job.heldFinalChunk !== undefined && !job.cancelled) this.forwardChunk(job, node, job.heldFinalChunk)
    job.heldFinalChunk = undefined
    this.decide(job, 'finished', `${job.chunksRelayed} chunk(s) relayed`, node.nodeId)
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
    this.nodeFailedJob(job, node, { kind: 'error', message })
  }

  private runningJobOf(node: NodeEntry, requestId: string): Job | undefined {
    const job = this.jobs.get(requestId)
    // A node may only speak for requests dispatched to it; once its end arrived, it has said all it may.
    return job !== undefined && job.node === node && job.status === 'running' && job.settling !== true ? job : undefined
  }

  /**
   * Sends the sealed request, unchanged, to `node`, and tells the client which node runs it: on a failover the
   * client gets a second `dispatched` and opens the new node's answer (its own salt, so its own keys).
   */
  private dispatch(job: Job, node: NodeEntry): void {
    job.status = 'running'
    job.node = node
    job.attempts++
    node.inFlight++
    job.dispatchedAtMs = Date.now()
    node.lastAssignmentChangeMs = job.dispatchedAtMs
    const { header } = job.submit
    // Sent with whatever else is bound for this node in the same turn (see DispatchBatcher).
    this.batcher.add(node, job)
    this.log.debug(
      { requestId: job.id, nodeId: node.nodeId, model: header.model, sizeBucket: header.sizeBucket },
      'dispatched',
    )
  }

  /** Ends a job: the last message to the client (if any), slot and bookkeeping released, the job off its stream. */
  private finish(job: Job, last: CoordinatorToClient | undefined): void {
    if (job.status === 'finished') return
    const wasRunning = job.status === 'running'
    job.status = 'finished'
    this.jobs.delete(job.id)
    if (this.accounts.isAdmitted(job.id)) {
      // Ended without a settled count: release the reservation and record the outcome.
      const outcome = last === undefined ? 'cancelled' : 'failed'
      const code = last?.type === 'error' ? last.code : undefined
      this.accounts
        .abandon({ ...job, header: job.submit.header }, outcome, job.node?.nodeId, code)
        .catch((error: unknown) =>
          this.log.error({ requestId: job.id, err: errorSummary(error) }, 'usage not recorded'),
        )
    }
    clearJobTimers(job)
    if (last !== undefined) job.client.trySend(last)
    job.client.release()
    if (wasRunning && job.node !== undefined) {
      job.node.inFlight--
      job.node.lastAssignmentChangeMs = Date.now()
      this.drainQueue(job.node.modelId)
    }
  }

  private failNodeJobs(node: NodeEntry, reason: string): void {
    for (const job of [...this.jobs.values()]) {
      if (job.node !== node || job.status !== 'running') continue
      this.nodeFailedJob(job, node, { kind: 'lost', reason })
    }
  }

  /**
   * `node` lost `job` (its link went, or it reported an error). Before the first chunk was relayed, a request that
   * may be retried moves to another candidate that has not failed it, with no client round trip; otherwise the
   * client gets the error: `node-lost` saying how far the answer got, or the node's own error.
   */
  private nodeFailedJob(
    job: Job,
    node: NodeEntry,
    cause: { kind: 'lost'; reason: string } | { kind: 'error'; message: ErrorMessage },
  ): void {
    if (job.status !== 'running' || job.node !== node || job.settling === true) return
    job.node = undefined
    // A final chunk held for the ledger belongs to that node's answer: never relayed, as the node never ended it.
    job.heldFinalChunk = undefined
    job.status = 'queued'
    node.inFlight--
    job.failedNodes.add(node.nodeId)
    const counters = this.registry.countersOf(node.nodeId)
    counters.errors++
    const why = cause.kind === 'lost' ? `node lost: ${cause.reason}` : `node reported ${cause.message.code}`
    const retryable = cause.kind === 'lost' || isRetryableCode(cause.message.code)
    const { candidates } = job.submit.header
    let failure: LullError | ErrorMessage | undefined
    if (job.cancelled) {
      this.decide(job, 'failed', `${why}; the client had cancelled`, node.nodeId)
      this.finish(job, undefined)
    } else if (!retryable || job.chunksRelayed > 0 || job.attempts >= candidates.length) {
      const limit = !retryable
        ? 'not retryable'
        : job.chunksRelayed > 0
          ? `${job.chunksRelayed} chunk(s) already relayed`
          : `all ${candidates.length} candidate(s) tried`
      this.decide(job, 'failed', `${why}; no failover: ${limit}`, node.nodeId)
      failure = cause.kind === 'error' ? cause.message : this.nodeLostError(job, cause.reason)
    } else {
      const placement = this.place(job)
      if (placement.kind === 'refuse') {
        this.decide(job, 'failed', `${why}; no other candidate is connected`, node.nodeId)
        failure = cause.kind === 'error' ? cause.message : this.nodeLostError(job, cause.reason)
      } else {
        counters.failovers++
        this.stats.failedOver()
        this.log.info(
          { requestId: job.id, fromNodeId: node.nodeId, attempt: job.attempts + 1, reason: why },
          'failing over before the first token',
        )
        if (placement.kind === 'node') {
          this.decide(
            job,
            'failover',
            `${why}; moved before the first token: ${placement.reason}`,
            placement.node.nodeId,
          )
          this.dispatch(job, placement.node)
        } else {
          this.decide(job, 'failover', `${why}; waiting for another candidate: ${placement.reason}`, node.nodeId)
          this.enqueue(job)
        }
      }
    }
    if (failure !== undefined) {
      this.stats.failed()
      this.finish(
        job,
        failure instanceof Error
          ? errorReply(failure, job.clientRequestId)
          : { ...failure, requestId: job.clientRequestId },
      )
    }
    this.drainQueue(node.modelId)
  }

  private nodeLostError(job: Job, reason: string): LullError {
    const progress =
      job.chunksRelayed > 0
        ? ` after ${job.chunksRelayed} sealed chunk(s) of the answer were relayed; resume from the text received so far`
        : ' before the first token, and no other candidate could take it; retry it'
    return new LullError(ErrorCode.NodeLost, `the node running this request went away (${reason})${progress}`)
  }

  private decide(job: Job, event: string, reason: string, nodeId?: string): void {
    this.decisions.record(
      { requestId: job.clientRequestId, nodeRequestId: job.id, model: job.submit.header.model },
      event,
      reason,
      nodeId,
    )
  }

  /** The operator's view: every node and network totals. Ids, counters and times only; never a payload. */
  status(): StatusMessage {
    return operatorStatus({
      coordinatorId: this.host.peerId.toString(),
      registry: this.registry,
      stats: this.stats,
      queues: this.queues,
    })
  }

  /** Where `job` can go now, timed for `onDecisionTimed`. */
  private place(job: Job): ReturnType<typeof placeRequest> {
    if (this.onDecisionTimed === undefined) {
      return placeRequest(this.registry, job.submit.header, Math.random, job.failedNodes)
    }
    const startedAt = performance.now()
    const placement = placeRequest(this.registry, job.submit.header, Math.random, job.failedNodes)
    this.onDecisionTimed(performance.now() - startedAt)
    return placement
  }

  /** Queues `job` for a free slot (see ModelQueues), or refuses it as `overloaded` when its model's queue is full. */
  private enqueue(job: Job): void {
    const overloaded = this.queues.push(job)
    if (overloaded !== undefined) this.finish(job, errorReply(overloaded, job.clientRequestId))
  }

  /** The header's `timeoutMs` ran out: a queued request is dropped, a running one is stopped on its node. */
  private deadlinePassed(job: Job, timeoutMs: number): void {
    job.deadlineTimer = undefined
    if (job.status === 'finished') return
    const error = new LullError(
      ErrorCode.DeadlineExceeded,
      job.status === 'queued'
        ? `the request's ${timeoutMs} ms deadline passed while it waited for a free slot; it was never run`
        : `the request's ${timeoutMs} ms deadline passed while it ran; it was stopped on its node`,
    )
    this.decide(job, 'deadline', error.message, job.node?.nodeId)
    if (job.status === 'queued') {
      this.queues.remove(job)
    } else if (job.node !== undefined && !this.batcher.withdraw(job.node, job)) {
      job.node.channel.trySend({ type: 'cancel', requestId: job.id })
    }
    this.stats.failed()
    this.finish(job, errorReply(error, job.clientRequestId))
  }

  /** Places waiting requests on slots that have come free: highest priority first, fairly between clients. */
  private drainQueue(modelId: string): void {
    if (this.queues.depth(modelId) === 0) return
    for (const job of this.queues.ordered(modelId)) {
      if (job.status !== 'queued' || !this.queues.has(job)) continue
      const placement = this.place(job)
      if (placement.kind === 'wait') continue
      this.queues.remove(job, placement.kind === 'node')
      if (placement.kind === 'node') {
        this.decide(job, 'placed', `a slot came free: ${placement.reason}`, placement.node.nodeId)
        this.dispatch(job, placement.node)
      } else {
        this.decide(job, 'refused', placement.error.message)
        if (job.failedNodes.size > 0) {
          const error = this.nodeLostError(job, 'no other candidate is connected')
          this.finish(job, errorReply(error, job.clientRequestId))
        } else {
          this.finish(job, errorReply(placement.error, job.clientRequestId))
        }
      }
      if (!this.registry.hasFreeSlot(modelId)) return
    }
  }

  private evictStaleNodes(): void {
    const cutoff = Date.now() - this.nodeStaleAfterMs
    for (const node of [...this.registry.all()]) {
      if (node.lastSeenMs >= cutoff) continue
      this.log.info({ nodeId: node.nodeId, silentMs: Date.now() - node.lastSeenMs }, 'evicting a stale node')
      node.channel.abort(new Error('no heartbeat'))
      this.nodeGone(node, 'no heartbeat')
    }
  }
}

function errorSummary(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: 'unknown', message: String(error) }
}
