import type { Stream } from '@libp2p/interface'
import {
  type ClientToCoordinator,
  COORDINATOR_TO_CLIENT,
  type CoordinatorToClient,
  ErrorCode,
  errorFromWire,
  LullError,
  MAX_FRAME_BYTES,
  MAX_REQUESTS_PER_CLIENT_STREAM,
  MessageChannel,
  type Received,
} from '@lull/proto'

/**
 * Bytes of one request's messages a session holds while the caller has not read them: a whole answer many times
 * over (answers are a few KB of sealed text), so only a coordinator that floods one request reaches it.
 */
export const MAX_UNREAD_BYTES_PER_REQUEST = 8 * MAX_FRAME_BYTES

/**
 * A session this long without traffic is not given new requests: the coordinator closes a stream that has been idle
 * for STREAM_IDLE_TIMEOUT_MS (120 s), and a request sent just then would be lost with it.
 */
export const SESSION_REUSE_IDLE_MS = 60_000

type Delivery = Received<CoordinatorToClient> | { thrown: unknown } | { ended: true }

/**
 * One request on a session: its messages from the coordinator in order (as a `MessageChannel` yields them), and
 * the means to send it more (a cancel). The iteration ends when the session's stream ends, and throws when it broke.
 */
export class SessionRequest implements AsyncIterable<Received<CoordinatorToClient>> {
  readonly #session: RequestSession
  readonly requestId: string
  #queue: Delivery[] = []
  #unreadBytes = 0
  #wake: (() => void) | undefined
  #done = false

  constructor(session: RequestSession, requestId: string) {
    this.#session = session
    this.requestId = requestId
  }

  /** Sends a message for this request; resolves once the stream can take more. */
  send(message: ClientToCoordinator): Promise<void> {
    return this.#session.send(message)
  }

  /** Sends without waiting; false when the session is gone. */
  trySend(message: ClientToCoordinator): boolean {
    return this.#session.trySend(message)
  }

  /** Ends this request's iteration with `error` (an abort, say); its later messages are dropped. */
  fail(error: unknown): void {
    this.deliver({ thrown: error })
  }

  /** The request is over: the session forgets it (messages for it that still arrive are dropped). */
  release(): void {
    this.#done = true
    this.#queue = []
    this.#unreadBytes = 0
    this.#session.release(this)
  }

  /** @internal From the session. */
  deliver(item: Delivery): void {
    if (this.#done) return
    if ('ok' in item && item.ok && item.message.type === 'chunk') {
      this.#unreadBytes += item.message.data.byteLength
      if (this.#unreadBytes > MAX_UNREAD_BYTES_PER_REQUEST) {
        this.#queue = []
        item = {
          ok: false,
          fatal: true,
          error: new LullError(
            ErrorCode.Internal,
            `the coordinator sent more than ${MAX_UNREAD_BYTES_PER_REQUEST} bytes for one request ahead of its reader`,
            { requestId: this.requestId },
          ),
        }
      }
    }
    if (!('ok' in item) || !item.ok) this.#done = true
    this.#queue.push(item)
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Received<CoordinatorToClient>> {
    for (;;) {
      const item = this.#queue.shift()
      if (item === undefined) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
        continue
      }
      if ('ended' in item) return
      if ('thrown' in item) throw item.thrown
      if (item.ok && item.message.type === 'chunk') this.#unreadBytes -= item.message.data.byteLength
      yield item
      if (!item.ok) return
    }
  }
}

/**
 * One long-lived client stream to the coordinator carrying many requests, each message naming its request: the
 * session reads the stream and hands each message to its request. Opening a stream costs a protocol negotiation
 * and libp2p's bookkeeping on both ends (on the coordinator, about as much CPU as relaying the whole request), so a
 * client keeps its sessions and opens another only when one carries MAX_REQUESTS_PER_CLIENT_STREAM requests.
 *
 * What cannot be told apart per request ends the session for all of its requests: the stream closing or breaking,
 * a malformed message from the coordinator, or an error it sends without a request id (it could not read a
 * message of ours). The client then opens a new session for the next request.
 */
export class RequestSession {
  readonly #channel: MessageChannel<typeof COORDINATOR_TO_CLIENT, ClientToCoordinator>
  readonly #requests = new Map<string, SessionRequest>()
  #ended = false
  #lastUsedMs = Date.now()

  constructor(stream: Stream) {
    this.#channel = new MessageChannel(stream, { inbound: COORDINATOR_TO_CLIENT })
    void this.#read()
  }

  /** Whether a new request may start here: open, not full, and not idle long enough to be closed under it. */
  get usable(): boolean {
    const { readStatus } = this.#channel.stream
    return (
      !this.#ended &&
      this.#channel.isOpen &&
      (readStatus === 'readable' || readStatus === 'paused') &&
      this.#requests.size < MAX_REQUESTS_PER_CLIENT_STREAM &&
      (this.#requests.size > 0 || Date.now() - this.#lastUsedMs < SESSION_REUSE_IDLE_MS)
    )
  }

  get ended(): boolean {
    return this.#ended
  }

  /** Requests in flight. */
  get size(): number {
    return this.#requests.size
  }

  /** Starts a request under `requestId` (unique among this session's requests). */
  start(requestId: string): SessionRequest {
    const request = new SessionRequest(this, requestId)
    this.#requests.set(requestId, request)
    this.#lastUsedMs = Date.now()
    return request
  }

  send(message: ClientToCoordinator): Promise<void> {
    this.#lastUsedMs = Date.now()
    return this.#channel.send(message)
  }

  trySend(message: ClientToCoordinator): boolean {
    return this.#channel.trySend(message)
  }

  release(request: SessionRequest): void {
    if (this.#requests.get(request.requestId) === request) this.#requests.delete(request.requestId)
    this.#lastUsedMs = Date.now()
  }

  /** Closes the stream (the coordinator cancels whatever is still on it). */
  close(reason = new Error('the session was closed')): void {
    this.#end({ thrown: reason })
    this.#channel.abort(reason)
  }

  async #read(): Promise<void> {
    try {
      for await (const received of this.#channel) {
        this.#lastUsedMs = Date.now()
        if (!received.ok) {
          // Not ours to attribute: the coordinator sent something unreadable.
          this.#end(received)
          this.#channel.abort(received.error)
          return
        }
        const message = received.message
        if (message.type === 'catalogue') continue
        const { requestId } = message
        if (requestId === undefined && message.type === 'error') {
          // An error for no request: the coordinator could not read a message of ours.
          const error = errorFromWire(message.code, `the coordinator refused this session: ${message.message}`)
          this.#end({ ok: false, fatal: true, error })
          this.#channel.abort(error)
          return
        }
        if (requestId !== undefined) this.#requests.get(requestId)?.deliver(received)
      }
      this.#end({ ended: true })
    } catch (error) {
      this.#end({ thrown: error })
    }
  }

  /** No more messages: every request in flight gets `last`, and no new request starts here. */
  #end(last: Delivery): void {
    if (this.#ended) return
    this.#ended = true
    for (const request of this.#requests.values()) request.deliver(last)
    this.#requests.clear()
  }
}
