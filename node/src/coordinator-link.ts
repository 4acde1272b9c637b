import type { Libp2p } from '@libp2p/interface'
import {
  COORDINATOR_TO_NODE,
  type CoordinatorToNode,
  type DispatchMessage,
  ErrorCode,
  HEARTBEAT_INTERVAL_MS,
  type HeartbeatMessage,
  LullError,
  MAX_NODE_LINK_STREAMS,
  MessageChannel,
  NODE_PROTOCOL,
  type NodeToCoordinator,
  type RegisterMessage,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import {
  LINK_CLOSE_TIMEOUT_MS,
  RECONNECT_INITIAL_DELAY_MS,
  RECONNECT_MAX_DELAY_MS,
  REGISTER_ACK_TIMEOUT_MS,
} from './constants.js'
import type { Logger } from './logger.js'

type NodeChannel = MessageChannel<typeof COORDINATOR_TO_NODE, NodeToCoordinator>

export interface CoordinatorLinkComponents {
  host: Libp2p
  logger: Logger
  /** The registration to send on every (re)connect. */
  registration: () => RegisterMessage
  /** Live load and state for heartbeats. */
  load: () => Omit<HeartbeatMessage, 'type'>
  onDispatch: (message: DispatchMessage) => void
  onCancel: (requestId: string) => void
  /** The link dropped: requests in flight can no longer be answered. */
  onDisconnect: () => void
}

/**
 * The node's outbound link to its coordinator (dialed out, so it works behind NAT): registers, heartbeats, takes
 * dispatches, and reconnects with capped exponential backoff and jitter whenever the link drops.
 */
export class CoordinatorLink {
  readonly #components: CoordinatorLinkComponents
  readonly #address: ReturnType<typeof multiaddr>
  readonly #stopController = new AbortController()
  #channel: NodeChannel | undefined
  #registered: PromiseWithResolvers<void> = Promise.withResolvers<void>()
  /** Rejects when the coordinator refuses this node's first registration (a missing, wrong or revoked join token). */
  readonly #refused: PromiseWithResolvers<never> = Promise.withResolvers<never>()
  #refusal: LullError | undefined
  #everRegistered = false
  #loop: Promise<void> | undefined

  constructor(coordinator: string, components: CoordinatorLinkComponents) {
    this.#address = multiaddr(coordinator)
    this.#components = components
  }

  /** Starts connecting; resolves once the first registration is acknowledged. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#loop = this.#run()
    const { promise, reject } = Promise.withResolvers<void>()
    const onAbort = (): void => reject(options.signal?.reason)
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await Promise.race([this.#registered.promise, this.#refused.promise, promise])
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }
  }

  get connected(): boolean {
    return this.#channel?.isOpen ?? false
  }

  /** Sends on the current link; false when there is none. */
  send(message: NodeToCoordinator): boolean {
    return this.#channel?.trySend(message) ?? false
  }

  sendHeartbeat(): void {
    this.send({ type: 'heartbeat', ...this.#components.load() })
  }

  async stop(): Promise<void> {
    this.#stopController.abort()
    const channel = this.#channel
    if (channel !== undefined) {
      // The last messages (a drained request's end, a hand-back error) reach the coordinator before the link ends.
      await channel.close({ signal: AbortSignal.timeout(LINK_CLOSE_TIMEOUT_MS) })
      channel.abort(new Error('node stopping'))
    }
    await this.#loop
  }

  async #run(): Promise<void> {
    const { logger } = this.#components
    const stopSignal = this.#stopController.signal
    let delayMs = RECONNECT_INITIAL_DELAY_MS
    while (!stopSignal.aborted) {
      let registered = false
      try {
        registered = await this.#session(() => {
          delayMs = RECONNECT_INITIAL_DELAY_MS
        })
      } catch (error) {
        if (stopSignal.aborted) break
        logger.warn(
          { err: { name: (error as Error).name, message: (error as Error).message } },
          'coordinator link failed',
        )
      }
      this.#channel = undefined
      this.#components.onDisconnect()
      if (stopSignal.aborted) break
      if (this.#refusal !== undefined && !this.#everRegistered) {
        // Retrying with the same credentials cannot help: stop and let start() report why.
        this.#refused.reject(this.#refusal)
        break
      }
      if (registered) logger.info('coordinator link closed; reconnecting')
      const jitteredMs = delayMs / 2 + Math.random() * (delayMs / 2)
      await sleep(jitteredMs, stopSignal)
      delayMs = Math.min(delayMs * 2, RECONNECT_MAX_DELAY_MS)
    }
  }

  /** One connection's life. Returns whether it got as far as being registered. */
  async #session(onRegistered: () => void): Promise<boolean> {
    const { host, logger } = this.#components
    const stopSignal = this.#stopController.signal
    const stream = await host.dialProtocol(this.#address, NODE_PROTOCOL, {
      signal: AbortSignal.any([stopSignal, AbortSignal.timeout(REGISTER_ACK_TIMEOUT_MS)]),
      // The live link plus one being replaced; libp2p's default is 64.
      maxOutboundStreams: MAX_NODE_LINK_STREAMS,
    })
    const channel: NodeChannel = new MessageChannel(stream, { inbound: COORDINATOR_TO_NODE })
    this.#channel = channel
    await channel.send(this.#components.registration())
    let registered = false
    const ackTimer = setTimeout(() => {
      if (!registered) channel.abort(new Error(`no registration acknowledgement within ${REGISTER_ACK_TIMEOUT_MS} ms`))
    }, REGISTER_ACK_TIMEOUT_MS)
    let heartbeat: NodeJS.Timeout | undefined
    try {
      for await (const received of channel) {
        if (!received.ok) {
          logger.debug({ code: received.error.code }, 'bad frame from coordinator')
          channel.trySend({ type: 'error', code: received.error.code, message: received.error.message })
          if (received.fatal) break
          continue
        }
        const message: CoordinatorToNode = received.message
        switch (message.type) {
          case 'registered':
            if (!registered) {
              registered = true
              this.#everRegistered = true
              this.#refusal = undefined
              onRegistered()
              logger.info({ nodeId: message.nodeId }, 'registered with coordinator')
              heartbeat = setInterval(() => this.sendHeartbeat(), HEARTBEAT_INTERVAL_MS)
              // The coordinator learns the node's state (it may be paused) at once, not after the first interval.
              this.sendHeartbeat()
              this.#registered.resolve()
            }
            break
          case 'dispatch':
            if (registered) this.#components.onDispatch(message)
            else
              channel.trySend({
                type: 'error',
                requestId: message.requestId,
                code: ErrorCode.UnexpectedMessage,
                message: 'not registered yet',
              })
            break
          case 'dispatch-batch':
            // Each entry is handled exactly as a single dispatch; they then run as parallel sequences.
            for (const request of message.requests) {
              if (registered) this.#components.onDispatch({ type: 'dispatch', ...request })
              else
                channel.trySend({
                  type: 'error',
                  requestId: request.requestId,
                  code: ErrorCode.UnexpectedMessage,
                  message: 'not registered yet',
                })
            }
            break
          case 'cancel':
            this.#components.onCancel(message.requestId)
            break
          case 'error':
            if (!registered && (message.code === ErrorCode.Unauthorized || message.code === ErrorCode.Forbidden)) {
              this.#refusal = new LullError(message.code, `the coordinator refused this node: ${message.message}`)
              logger.error(
                { code: message.code, reason: message.message },
                'registration refused: start the node with a valid join token (--join-token or LULL_JOIN_TOKEN) from the network operator',
              )
              break
            }
            logger.warn({ code: message.code, reason: message.message }, 'coordinator reported an error')
            break
        }
      }
    } finally {
      clearTimeout(ackTimer)
      if (heartbeat !== undefined) clearInterval(heartbeat)
      channel.abort(new Error('link closed'))
    }
    return registered
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
