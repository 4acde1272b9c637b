import type { Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  type Benchmark,
  createLullHost,
  type DispatchMessage,
  type HardwareSummary,
  loadOrCreateIdentity,
  type NodeCertificate,
  type RegisterMessage,
} from '@lull/proto'
import { DEFAULT_SLOTS } from './constants.js'
import { CoordinatorLink } from './coordinator-link.js'
import { Engine } from './engine/index.js'
import { describeHardware } from './hardware.js'
import { KeyRing } from './key-ring.js'
import { createLogger, type Logger } from './logger.js'
import { prepareModel, type ResolvedModel } from './model/index.js'
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
  logger?: Logger
  signal?: AbortSignal
}

const AGENT = 'lull-node/0.1.0'

export interface NodeStats {
  requestsServed: number
  requestsCancelled: number
  requestsFailed: number
  outputTokens: number
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
  #rotationTimer: NodeJS.Timeout | undefined
  #stopped = false
  readonly #stats: NodeStats = { requestsServed: 0, requestsCancelled: 0, requestsFailed: 0, outputTokens: 0 }

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
  }) {
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
    this.#link = new CoordinatorLink(init.coordinator, {
      host: init.host,
      logger: init.logger,
      registration: () => this.#registration(),
      load: () => ({ busySlots: this.#engine.busySlots, state: 'serving' }),
      onDispatch: (message) => this.#onDispatch(message),
      onCancel: (requestId) => this.#inFlight.get(requestId)?.abort(),
      onDisconnect: () => {
        for (const controller of this.#inFlight.values()) controller.abort()
      },
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
    })
    logger.info({ model: model.id, sha256: model.sha256, sizeBytes: model.sizeBytes, pin: model.pin }, 'model ready')
    const engine = await Engine.load(
      { modelPath: model.path, slots: options.slots ?? DEFAULT_SLOTS, threads: options.threads },
      signal === undefined ? {} : { signal },
    )
    let host: Libp2p | undefined
    try {
      const benchmark = await engine.benchmark(signal === undefined ? {} : { signal })
      logger.info(benchmark, 'benchmark measured')
      const hardware = describeHardware(engine.gpu, engine.vramTotalBytes)
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
      })
      await node.#link.start(signal === undefined ? {} : { signal })
      node.#scheduleRotation()
      return node
    } catch (error) {
      await host?.stop()
      await engine.dispose()
      throw error
    }
  }

  get busySlots(): number {
    return this.#engine.busySlots
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

  /** Stops taking work, cancels what is running, and releases the model and the host. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#rotationTimer)
    for (const controller of this.#inFlight.values()) controller.abort()
    await this.#link.stop()
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
      certificate: this.#keys.certificate,
      slots: this.slots,
      benchmark: this.benchmark,
      agent: AGENT,
    }
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
      })
  }
}
