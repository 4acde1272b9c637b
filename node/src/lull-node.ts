import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  type Benchmark,
  createLullHost,
  type DispatchMessage,
  ErrorCode,
  type HardwareSummary,
  type HeartbeatMessage,
  LullError,
  loadOrCreateIdentity,
  type NodeCertificate,
  type NodeState,
  type RegisterMessage,
  type SignedUsageFields,
  signUsage,
} from '@lull/proto'
import { DEFAULT_SLOTS, HAND_BACK_TIMEOUT_MS } from './constants.js'
import { CoordinatorLink } from './coordinator-link.js'
import { DEFAULT_CONTEXT_SIZE_TOKENS, Engine } from './engine/index.js'
import { describeHardware, liveHardware, refreshLiveHardware } from './hardware.js'
import {
  type Clock,
  type IdleMode,
  IdlePolicy,
  type IdleSignalSource,
  type IdleThresholds,
  type PolicyState,
  type PolicyStatus,
  parseIdleMode,
} from './idle-policy.js'
import { SystemIdleSignals } from './idle-signals.js'
import { KeyRing } from './key-ring.js'
import { createLogger, type Logger } from './logger.js'
import {
  checkModelFitsInMemory,
  type DownloadProgress,
  type MemoryFitOptions,
  prepareModel,
  type ResolvedModel,
} from './model/index.js'
import { type NodeStatusReport, STATUS_INTERVAL_MS, writeStatusFile } from './node-status.js'
import { ReplayGuard } from './replay-guard.js'
import { runDispatch } from './request-runner.js'

export interface LullNodeOptions {
  /** The coordinator's multiaddr, ending in `/p2p/<peer id>`. */
  coordinator: string
  /** `lull-tiny` or a path to a GGUF file (optionally `path@sha256:<hex>`). */
  model: string
  /** Refuse the model unless its SHA-256 is this (hex). */
  modelSha256?: string
  /** Holds the identity key and generated models. */
  dataDir: string
  /** The join token the coordinator's operator issued (`lull-coordinator tokens create`); not needed in open mode. */
  joinToken?: string
  /** Parallel sequences (concurrent requests). @default 4 */
  slots?: number
  /** Engine threads. Required: node-llama-cpp's default oversubscribes small machines. */
  threads: number
  /**
   * Oldest sealed request the node runs; nonces are held this long (plus clock skew) to refuse replays.
   * @default REPLAY_WINDOW_MS (5 min)
   */
  replayWindowMs?: number
  /** How often the HPKE key is replaced. @default KEY_ROTATION_INTERVAL_MS (24 h) */
  keyRotationIntervalMs?: number
  /** How long a replaced key still opens requests. @default KEY_OVERLAP_MS (1 h) */
  keyOverlapMs?: number
  /**
   * When to serve: `idle` (the owner is away), `always`, or `HH:MM-HH:MM` (local time). The library defaults to
   * `always`; the `lull-node` CLI defaults to `idle`.
   * @default 'always'
   */
  when?: IdleMode | string
  /** How long in-flight requests may finish after the node pauses before they are cancelled. @default DEFAULT_GRACE_MS */
  graceMs?: number
  /** Where the idle signals come from. @default SystemIdleSignals (this machine) */
  idleSignals?: IdleSignalSource
  /** How often the idle signals are read. @default IDLE_POLL_INTERVAL_MS */
  idlePollIntervalMs?: number
  idleThresholds?: IdleThresholds
  /** Time for the idle policy (tests). */
  clock?: Clock
  /** Write `status.json` in the data dir for `lull-node status`. @default true */
  statusFile?: boolean
  /** How often the status file is rewritten. @default STATUS_INTERVAL_MS */
  statusIntervalMs?: number
  /** Free RAM/VRAM figures for the memory check before loading (tests). @default measured on this machine */
  memory?: Pick<MemoryFitOptions, 'freeRamBytes' | 'freeVramBytes'>
  /** Progress of downloading an `hf:` model (the `lull-node` CLI shows it). */
  onDownloadProgress?: (progress: DownloadProgress) => void
  logger?: Logger
  signal?: AbortSignal
}

const AGENT = 'lull-node/0.1.0'
/** The reason a shutting-down node gives while it drains. */
const SHUTDOWN_REASON = 'shutting down'

/** What {@link LullNode.drain} did with the requests that were running. */
export interface DrainOutcome {
  /** Finished within the grace period. */
  finished: number
  /** Still running when the grace period ended: cancelled and handed back to the coordinator. */
  handedBack: number
}

export interface NodeStats {
  requestsServed: number
  requestsCancelled: number
  requestsFailed: number
  outputTokens: number
  /** Dispatches refused because the node was not serving (paused or draining) when they arrived. */
  requestsRefused: number
}

/**
 * A worker node: loads its model, measures it, certifies a fresh HPKE key with its identity key, dials the
 * coordinator and serves sealed requests on `slots` parallel sequences.
 */
export class LullNode implements AsyncDisposable {
  readonly nodeId: string
  readonly model: ResolvedModel
  readonly hardware: HardwareSummary
  readonly benchmark: Benchmark
  readonly slots: number
  readonly #engine: Engine
  readonly #host: Libp2p
  readonly #link: CoordinatorLink
  readonly #logger: Logger
  readonly #inFlight = new Map<string, AbortController>()
  readonly #keys: KeyRing
  readonly #replayGuard: ReplayGuard
  readonly #identity: PrivateKey
  readonly #joinToken: string | undefined
  #rotationTimer: NodeJS.Timeout | undefined
  #stopped = false
  /** Set once {@link drain} began: the node tells the coordinator it is draining and takes no new work. */
  #shuttingDown = false
  /** Resolved when the last running request finishes (while {@link drain} waits). */
  #allFinished: (() => void) | undefined
  readonly #policy: IdlePolicy
  readonly #when: string
  readonly #dataDir: string
  readonly #coordinator: string
  readonly #startedAtMs = Date.now()
  readonly #statusFile: boolean
  readonly #statusIntervalMs: number
  #statusTimer: NodeJS.Timeout | undefined
  #statusWrite: Promise<void> = Promise.resolve()
  readonly #stats: NodeStats = {
    requestsServed: 0,
    requestsCancelled: 0,
    requestsFailed: 0,
    outputTokens: 0,
    requestsRefused: 0,
  }

  private constructor(init: {
    nodeId: string
    model: ResolvedModel
    engine: Engine
    host: Libp2p
    logger: Logger
    hardware: HardwareSummary
    benchmark: Benchmark
    keys: KeyRing
    replayGuard: ReplayGuard
    coordinator: string
    options: LullNodeOptions
    identity: PrivateKey
  }) {
    const { options } = init
    const mode =
      typeof options.when === 'string' ? parseIdleMode(options.when) : (options.when ?? { kind: 'always' as const })
    this.#when = mode.kind === 'window' ? mode.text : mode.kind
    this.#dataDir = options.dataDir
    this.#coordinator = init.coordinator
    this.#statusFile = options.statusFile ?? true
    this.#statusIntervalMs = options.statusIntervalMs ?? STATUS_INTERVAL_MS
    this.nodeId = init.nodeId
    this.model = init.model
    this.#engine = init.engine
    this.#host = init.host
    this.#logger = init.logger
    this.hardware = init.hardware
    this.benchmark = init.benchmark
    this.slots = init.engine.slots
    this.#keys = init.keys
    this.#replayGuard = init.replayGuard
    this.#identity = init.identity
    this.#joinToken = options.joinToken
    this.#link = new CoordinatorLink(init.coordinator, {
      host: init.host,
      logger: init.logger,
      registration: () => this.#registration(),
      load: () => this.#heartbeat(),
      onDispatch: (message) => this.#onDispatch(message),
      onCancel: (requestId) => this.#inFlight.get(requestId)?.abort(),
      onDisconnect: () => {
        for (const controller of this.#inFlight.values()) controller.abort()
      },
    })
    this.#policy = new IdlePolicy({
      mode,
      source: options.idleSignals ?? new SystemIdleSignals(),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      ...(options.idlePollIntervalMs === undefined ? {} : { pollIntervalMs: options.idlePollIntervalMs }),
      ...(options.idleThresholds === undefined ? {} : { thresholds: options.idleThresholds }),
      inFlight: () => this.#inFlight.size,
      cancelInFlight: (reason) => {
        this.#logger.info({ inFlight: this.#inFlight.size, reason }, 'grace period over; handing requests back')
        const error = new LullError(ErrorCode.NodeLost, `the node paused (${reason}); request handed back`)
        for (const controller of this.#inFlight.values()) controller.abort(error)
      },
      onChange: (status) => this.#onStateChange(status),
      onError: (error) => this.#logger.warn({ err: { name: (error as Error).name } }, 'idle signals failed'),
    })
  }

  /** Loads the model and registers with the coordinator; resolves once the node is serving. */
  static async start(options: LullNodeOptions): Promise<LullNode> {
    const logger = options.logger ?? createLogger()
    const { signal } = options
    const identity = await loadOrCreateIdentity(options.dataDir)
    const nodeId = peerIdFromPrivateKey(identity).toString()
    // Resolves, pins by SHA-256, validates the GGUF and trial-loads untrusted files in a child process, so a
    // malformed model is refused instead of aborting this daemon.
    const model = await prepareModel(options.model, options.dataDir, {
      threads: options.threads,
      ...(options.modelSha256 === undefined ? {} : { expectedSha256: options.modelSha256 }),
      ...(signal === undefined ? {} : { signal }),
      onDownloadProgress: options.onDownloadProgress,
    })
    logger.info({ model: model.id, sha256: model.sha256, sizeBytes: model.sizeBytes, pin: model.pin }, 'model ready')
    // Refuses (InsufficientMemoryError, saying what would fit) a model and context that free memory cannot hold.
    await checkModelFitsInMemory(model.path, {
      slots: options.slots ?? DEFAULT_SLOTS,
      contextSize: DEFAULT_CONTEXT_SIZE_TOKENS,
      ...options.memory,
      signal,
    })
    const engine = await Engine.load(
      { modelPath: model.path, slots: options.slots ?? DEFAULT_SLOTS, threads: options.threads },
      signal === undefined ? {} : { signal },
    )
    let host: Libp2p | undefined
    let started: LullNode | undefined
    try {
      const benchmark = await engine.benchmark(signal === undefined ? {} : { signal })
      logger.info(benchmark, 'benchmark measured')
      const hardware = await describeHardware(engine.gpu, engine.vramTotalBytes)
      // The first heartbeat's free memory must be a real reading on macOS too (see availableMemoryBytes).
      await refreshLiveHardware()
      const keys = await KeyRing.create({
        identity,
        nodeId,
        modelId: model.id,
        modelDigest: model.sha256,
        hardware,
        ...(options.keyRotationIntervalMs === undefined ? {} : { rotationIntervalMs: options.keyRotationIntervalMs }),
        ...(options.keyOverlapMs === undefined ? {} : { overlapMs: options.keyOverlapMs }),
      })
      host = await createLullHost({ privateKey: identity })
      const node = new LullNode({
        nodeId,
        model,
        engine,
        host,
        logger,
        hardware,
        benchmark,
        keys,
        replayGuard: new ReplayGuard(options.replayWindowMs === undefined ? {} : { windowMs: options.replayWindowMs }),
        coordinator: options.coordinator,
        options,
        identity,
      })
      started = node
      await node.#policy.start()
      for (const note of node.#policy.notes) logger.warn(note)
      await node.#link.start(signal === undefined ? {} : { signal })
      node.#scheduleRotation()
      node.#scheduleStatus()
      return node
    } catch (error) {
      if (started !== undefined) started.#policy.stop()
      await host?.stop()
      await engine.dispose()
      throw error
    }
  }

  get busySlots(): number {
    return this.#engine.busySlots
  }

  /** The idle policy's state: serving, paused (reason), draining (reason) or offline; and the latest signals. */
  get idleStatus(): PolicyStatus {
    return this.#policy.status
  }

  get state(): PolicyState {
    return this.#policy.state
  }

  /** Reads the idle signals now and applies the decision (the node also does this on its own every second). */
  checkIdle(): Promise<void> {
    return this.#policy.poll()
  }

  /** What `lull-node status` shows. Counts and states only. */
  get statusReport(): NodeStatusReport {
    const now = Date.now()
    const policy = this.#policy.status
    return {
      version: 1,
      pid: process.pid,
      nodeId: this.nodeId,
      agent: AGENT,
      startedAtMs: this.#startedAtMs,
      updatedAtMs: now,
      uptimeMs: now - this.#startedAtMs,
      ...(this.#shuttingDown && !this.#stopped
        ? { state: 'draining' as const, reason: SHUTDOWN_REASON }
        : { state: policy.state, ...(policy.reason === undefined ? {} : { reason: policy.reason }) }),
      stateSinceMs: policy.sinceMs,
      when: this.#when,
      graceMs: this.#policy.graceMs,
      signals: policy.signals,
      notes: [...this.#policy.notes],
      model: { id: this.model.id, sha256: this.model.sha256 },
      slots: { total: this.slots, busy: this.#engine.busySlots },
      stats: { ...this.#stats },
      coordinator: { address: this.#coordinator, connected: this.#link.connected },
      hardware: { ...this.hardware, ...liveHardware() },
    }
  }

  /** Counters since start. Counts only: nothing about what was asked or answered. */
  get stats(): Readonly<NodeStats> {
    return { ...this.#stats }
  }

  /** The certificate of the current HPKE key. */
  get certificate(): NodeCertificate {
    return this.#keys.certificate
  }

  /** Replaces the HPKE key now and announces the new certificate; the old key opens requests until it expires. */
  async rotateKey(): Promise<NodeCertificate> {
    const certificate = await this.#keys.rotate()
    this.#link.send({ type: 'certificate', certificate })
    this.#logger.info({ notAfterMs: certificate.notAfterMs }, 'key rotated')
    return certificate
  }

  /**
   * Shuts down gently (what SIGINT/SIGTERM do): stops taking work and tells the coordinator at once that this node
   * is `draining`, lets running requests finish for up to `graceMs`, hands the rest back (`node-lost`, so the
   * coordinator fails them over or ends them), then {@link stop}s.
   */
  async drain(options: { graceMs?: number } = {}): Promise<DrainOutcome> {
    if (this.#shuttingDown || this.#stopped) return { finished: 0, handedBack: 0 }
    this.#shuttingDown = true
    const graceMs = options.graceMs ?? this.#policy.graceMs
    // The idle policy stops deciding: no dispatch is accepted from here on.
    this.#policy.stop()
    this.#link.sendHeartbeat()
    const running = this.#inFlight.size
    this.#logger.info({ inFlight: running, graceMs }, 'draining before shutdown')
    let handedBack = 0
    if (!(await this.#untilAllFinished(graceMs))) {
      handedBack = this.#inFlight.size
      this.#logger.info({ inFlight: handedBack }, 'grace period over; handing requests back')
      const error = new LullError(ErrorCode.NodeLost, 'the node is shutting down; request handed back')
      for (const controller of this.#inFlight.values()) controller.abort(error)
      await this.#untilAllFinished(HAND_BACK_TIMEOUT_MS)
    }
    await this.stop()
    return { finished: running - handedBack, handedBack }
  }

  /** Resolves true once no request is running, or false after `timeoutMs`. */
  #untilAllFinished(timeoutMs: number): Promise<boolean> {
    if (this.#inFlight.size === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#allFinished = undefined
        resolve(false)
      }, timeoutMs)
      this.#allFinished = () => {
        clearTimeout(timer)
        this.#allFinished = undefined
        resolve(true)
      }
    })
  }

  /** Stops taking work, cancels what is running, and releases the model and the host. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#rotationTimer)
    clearTimeout(this.#statusTimer)
    this.#policy.stop()
    // Anything still running is handed back (a retryable node-lost), never reported as a finished answer.
    const handedBack = new LullError(ErrorCode.NodeLost, 'the node stopped; request handed back')
    for (const controller of this.#inFlight.values()) controller.abort(handedBack)
    await this.#link.stop()
    await this.#writeStatus()
    await this.#host.stop()
    await this.#engine.dispose()
    this.#keys.dispose()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  #registration(): RegisterMessage {
    return {
      type: 'register',
      ...(this.#joinToken === undefined ? {} : { joinToken: this.#joinToken }),
      certificate: this.#keys.certificate,
      slots: this.slots,
      benchmark: this.benchmark,
      agent: AGENT,
    }
  }

  #heartbeat(): Omit<HeartbeatMessage, 'type'> {
    if (this.#shuttingDown) {
      return { busySlots: this.#engine.busySlots, state: 'draining', reason: SHUTDOWN_REASON, ...liveHardware() }
    }
    const { state, reason } = this.#policy.status
    // offline is local only: a node going offline tells the coordinator it is paused, then drops the link.
    const wireState: NodeState = state === 'offline' ? 'paused' : state
    return {
      busySlots: this.#engine.busySlots,
      state: wireState,
      ...(reason === undefined ? {} : { reason: reason.slice(0, 256) }),
      ...liveHardware(),
    }
  }

  #onStateChange(status: PolicyStatus): void {
    this.#logger.info({ state: status.state, reason: status.reason }, 'node state changed')
    // The coordinator hears of every change at once, not at the next periodic heartbeat.
    this.#link.sendHeartbeat()
    void this.#writeStatus()
  }

  #scheduleStatus(): void {
    if (!this.#statusFile) return
    void this.#writeStatus()
    this.#statusTimer = setInterval(() => void this.#writeStatus(), this.#statusIntervalMs)
    this.#statusTimer.unref()
  }

  /** Status writes run one after another; a failed write is logged and the next one tries again. */
  #writeStatus(): Promise<void> {
    if (!this.#statusFile) return Promise.resolve()
    this.#statusWrite = this.#statusWrite
      .then(() => writeStatusFile(this.#dataDir, this.statusReport))
      .catch((error: unknown) =>
        this.#logger.warn(
          { err: { name: (error as Error).name, code: (error as NodeJS.ErrnoException).code } },
          'status file not written',
        ),
      )
    return this.#statusWrite
  }

  #scheduleRotation(): void {
    this.#rotationTimer = setTimeout(() => {
      if (this.#stopped) return
      this.rotateKey()
        .catch((error: unknown) => this.#logger.error({ err: { name: (error as Error).name } }, 'key rotation failed'))
        .finally(() => {
          if (!this.#stopped) this.#scheduleRotation()
        })
    }, this.#keys.rotationIntervalMs)
    this.#rotationTimer.unref()
  }

  #onDispatch(message: DispatchMessage): void {
    if (this.#inFlight.has(message.requestId)) return
    if (!this.#policy.accepting) {
      // The coordinator had not yet heard that this node stopped serving: hand the request straight back.
      const { state, reason } = this.#policy.status
      this.#stats.requestsRefused++
      this.#link.send({
        type: 'error',
        requestId: message.requestId,
        code: ErrorCode.NoCapacity,
        message: `this node is ${state}${reason === undefined ? '' : ` (${reason})`}`,
      })
      return
    }
    const controller = new AbortController()
    this.#inFlight.set(message.requestId, controller)
    const components = {
      engine: this.#engine,
      nodeId: this.nodeId,
      modelId: this.model.id,
      keys: this.#keys,
      replayGuard: this.#replayGuard,
      logger: this.#logger,
      send: (reply: Parameters<CoordinatorLink['send']>[0]) => this.#link.send(reply),
      signUsage: (fields: SignedUsageFields) => signUsage(fields, this.#identity),
    }
    runDispatch(components, message, controller.signal)
      .then((outcome) => {
        if (outcome.kind === 'failed') {
          this.#stats.requestsFailed++
          return
        }
        if (outcome.finishReason === 'cancelled') this.#stats.requestsCancelled++
        else this.#stats.requestsServed++
        this.#stats.outputTokens += outcome.outputTokens
      })
      .catch((error: unknown) => this.#logger.error({ err: { name: (error as Error).name } }, 'request runner failed'))
      .finally(() => {
        this.#inFlight.delete(message.requestId)
        this.#link.sendHeartbeat()
        this.#policy.requestFinished()
        if (this.#inFlight.size === 0) this.#allFinished?.()
      })
  }
}
