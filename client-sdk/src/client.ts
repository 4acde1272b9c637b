import '@lull/proto/polyfill'
import { randomBytes } from 'node:crypto'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import {
  CLIENT_PROTOCOL,
  CLIENT_TO_COORDINATOR,
  type ClientToCoordinator,
  COORDINATOR_TO_CLIENT,
  createLullHost,
  createRequestId,
  createRequestSenderPool,
  DEFAULT_CANDIDATES,
  decodeResponsePiece,
  ErrorCode,
  encodeHeaderAad,
  encodeRequestBody,
  errorFromWire,
  type FinishReason,
  LullError,
  MAX_CLIENT_STREAMS_PER_CONNECTION,
  MessageChannel,
  type RequestHeader,
  ResponseOpener,
  StreamTruncatedError,
  sealRequest,
  type Usage,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import { chooseCandidates, type ModelInfo, type NodeInfo, verifiedModels } from './catalogue.js'
import { type ChatEvent, ChatStream } from './chat-stream.js'
import {
  type ChatOptions,
  type CompleteOptions,
  DEFAULT_CATALOGUE_MAX_AGE_MS,
  DEFAULT_MAX_RESUMES,
  DEFAULT_MAX_TOKENS,
  type LullClientOptions,
} from './client-options.js'
import { AbortError, ConnectionError, ModelNotFoundError, ResumeFailedError, TimeoutError } from './errors.js'
import { unlessAborted, withTimeout } from './internal/abortable.js'
import { continuationOf } from './internal/continuation.js'
import { RequestSession, type SessionRequest } from './internal/request-session.js'
import { DEFAULT_MAX_RETRIES, type RetryInfo, withRetries } from './internal/retry-policy.js'

/** What one attempt saw: the node it was dispatched to (the last, after coordinator failovers). */
interface AttemptState {
  nodeId?: string | undefined
  /** Tokens of the text yielded so far, as the node counted them (0 when it does not count). */
  outputTokens: number
}

/**
 * Submits prompts that only the executing node can read. The prompt is sealed on this machine for a few candidate
 * nodes whose certificates were verified here; the coordinator routes ciphertext.
 */
export class LullClient implements AsyncDisposable {
  readonly #host: Libp2p
  /** The connection to the coordinator, reused for every stream while it is open; dialled again once it is not. */
  #connection: Connection | undefined
  /**
   * Long-lived streams to the coordinator, each carrying many requests (see RequestSession). Opening a stream costs
   * a protocol round trip and libp2p's bookkeeping on both ends: about 5 ms on loopback, and on the coordinator about
   * as much CPU as relaying a whole request.
   */
  #sessions: RequestSession[] = []
  /** A session being opened, which every request that finds no room in the others waits for. */
  #opening: Promise<RequestSession> | undefined
  /**
   * HPKE sender contexts set up ahead for the nodes this client seals to, prepared while an answer is awaited:
   * setting one up is most of the cost of sealing (~0.5 ms per candidate), on the way to the first token otherwise.
   */
  readonly #senders = createRequestSenderPool()
  #closed = false
  readonly #coordinator: ReturnType<typeof multiaddr>
  readonly #candidates: number
  readonly #timeoutMs: number
  readonly #trustedNodes: ReadonlySet<string> | undefined
  readonly #catalogueMaxAgeMs: number
  readonly #maxRetries: number
  readonly #onRetry: ((info: RetryInfo) => void) | undefined
  readonly #maxResumes: number
  readonly #apiKey: string | undefined
  #catalogue: { models: ModelInfo[]; fetchedAtMs: number } | undefined

  private constructor(host: Libp2p, options: LullClientOptions) {
    this.#host = host
    this.#apiKey = options.apiKey
    this.#coordinator = multiaddr(options.coordinator)
    this.#candidates = options.candidates ?? DEFAULT_CANDIDATES
    this.#timeoutMs = options.timeoutMs ?? 10_000
    this.#catalogueMaxAgeMs = options.catalogueMaxAgeMs ?? DEFAULT_CATALOGUE_MAX_AGE_MS
    this.#maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES
    this.#onRetry = options.onRetry
    this.#maxResumes = options.maxResumes ?? DEFAULT_MAX_RESUMES
    this.#trustedNodes = options.trustedNodes === undefined ? undefined : new Set(options.trustedNodes)
  }

  /** Connects to a coordinator. */
  static async connect(options: LullClientOptions & { signal?: AbortSignal }): Promise<LullClient> {
    let address: ReturnType<typeof multiaddr>
    try {
      address = multiaddr(options.coordinator)
    } catch (error) {
      throw new ConnectionError(
        `"${options.coordinator}" is not a multiaddr; pass the address lull-coordinator printed`,
        { cause: error },
      )
    }
    const host = await createLullHost()
    const client = new LullClient(host, options)
    try {
      await host.dial(address, { signal: withTimeout(options.signal, client.#timeoutMs) })
    } catch (error) {
      await host.stop()
      throw new ConnectionError(
        `cannot reach the coordinator at ${options.coordinator}: ${(error as Error).message}. Check the address and that lull-coordinator is running.`,
        { cause: error },
      )
    }
    return client
  }

  /** The models the network serves, each with the nodes whose certificates verified. */
  async models(options: { signal?: AbortSignal } = {}): Promise<ModelInfo[]> {
    const stream = await this.#newStream(withTimeout(options.signal, this.#timeoutMs))
    const channel = new MessageChannel<typeof COORDINATOR_TO_CLIENT, ClientToCoordinator>(stream, {
      inbound: COORDINATOR_TO_CLIENT,
    })
    try {
      await channel.send({ type: 'catalogue-request', ...(this.#apiKey === undefined ? {} : { apiKey: this.#apiKey }) })
      for await (const received of channel) {
        if (!received.ok) throw received.error
        if (received.message.type === 'catalogue') {
          const models = await verifiedModels(received.message, Date.now())
          this.#catalogue = { models, fetchedAtMs: Date.now() }
          return models
        }
        if (received.message.type === 'error') throw errorFromWire(received.message.code, received.message.message)
      }
      throw new ConnectionError('the coordinator closed the stream without sending the catalogue')
    } catch (error) {
      if (error instanceof LullError) throw error
      throw new ConnectionError(`fetching the catalogue failed: ${(error as Error).message}`, { cause: error })
    } finally {
      await channel.close()
      // The first request will need a session: it opens while the caller seals its prompt.
      this.#prepareSession()
    }
  }

  /** Starts a chat request. Nothing is sent until the stream is iterated (or `final()` called). */
  chat(options: ChatOptions): ChatStream {
    return new ChatStream(this.#runWithRetries(options))
  }

  /**
   * Starts a completion of a plain-text prompt. The prompt travels as a single user message, so the node applies
   * the model's chat template; the events and `final()` are the same as `chat`'s.
   */
  complete(options: CompleteOptions): ChatStream {
    const { prompt, ...rest } = options
    return this.chat({ ...rest, messages: [{ role: 'user', content: prompt }] })
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#senders.clear()
    for (const session of this.#sessions.splice(0)) session.close(new Error('client closed'))
    this.#opening?.then(
      (session) => session.close(new Error('client closed')),
      () => {},
    )
    await this.#host.stop()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async *#runWithRetries(options: ChatOptions): AsyncGenerator<ChatEvent> {
    const signal = options.timeoutMs === undefined ? options.signal : withTimeout(options.signal, options.timeoutMs)
    const maxResumes = options.maxResumes ?? this.#maxResumes
    /** The answer's text yielded so far, over every part. */
    let received = ''
    /** Tokens of the parts lost after yielding text, as their nodes counted them: spent from the answer's budget. */
    let lostOutputTokens = 0
    const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS
    const lostNodes = new Set<string>()
    /** The last part lost: its node and request id, for a finish event when nothing is left to resume. */
    let lost: { nodeId: string; requestId: string } | undefined
    try {
      for (let resumes = 0; ; resumes++) {
        if (lost !== undefined && lostOutputTokens >= maxTokens) {
          // The lost parts used the whole budget: the answer is as long as it may be.
          yield {
            type: 'finish',
            finishReason: 'length',
            usage: { promptTokens: 0, outputTokens: lostOutputTokens },
            ...lost,
          }
          return
        }
        const state: AttemptState = { outputTokens: 0 }
        const attempt = {
          ...options,
          maxTokens: maxTokens - lostOutputTokens,
          messages: received === '' ? options.messages : continuationOf(options.messages, received),
          ...(signal === undefined ? {} : { signal }),
        }
        try {
          for await (const event of withRetries(() => this.#run(attempt, state, lostNodes), {
            maxRetries: options.maxRetries ?? this.#maxRetries,
            signal,
            onRetry: (info) => {
              // The failure may come from a stale catalogue (a candidate left): look again before re-sealing.
              this.#catalogue = undefined
              this.#onRetry?.(info)
            },
          })) {
            if (event.type === 'text-delta') {
              received += event.text
              yield event
            } else {
              // The whole answer's usage: the lost parts' tokens (counted from their chunks) are output, not prompt.
              const { promptTokens, outputTokens } = event.usage
              yield {
                ...event,
                usage: {
                  promptTokens: Math.max(0, promptTokens - lostOutputTokens),
                  outputTokens: outputTokens + lostOutputTokens,
                },
              }
            }
          }
          return
        } catch (error) {
          if (
            resumes > 0 &&
            (error instanceof ModelNotFoundError || (error instanceof LullError && error.code === ErrorCode.NoCapacity))
          ) {
            // Resuming found no node to continue on (the lost ones excluded, trustedNodes applied), retries included.
            throw new ResumeFailedError(
              `the answer's node was lost after part of it was received, and no other node can resume it: ${error.message}`,
              { cause: error, partialText: received, ...(lost === undefined ? {} : { requestId: lost.requestId }) },
            )
          }
          if (!(error instanceof LullError) || error.code !== ErrorCode.NodeLost || !error.isRetryable) throw error
          if (received === '' || signal?.aborted || maxResumes === 0) throw error
          if (state.nodeId !== undefined) lostNodes.add(state.nodeId)
          lostOutputTokens += state.outputTokens
          if (state.nodeId !== undefined && error.requestId !== undefined) {
            lost = { nodeId: state.nodeId, requestId: error.requestId }
          }
          if (resumes >= maxResumes) {
            throw new ResumeFailedError(
              `the answer's node was lost after part of it was received, and ${maxResumes} resume(s) are used up: ${error.message}`,
              {
                cause: error,
                partialText: received,
                ...(error.requestId === undefined ? {} : { requestId: error.requestId }),
              },
            )
          }
          // The lost node may linger in a cached catalogue: look again before sealing the continuation.
          this.#catalogue = undefined
        }
      }
    } catch (error) {
      if (options.signal?.aborted) throw error instanceof AbortError ? error : new AbortError()
      if (signal?.aborted) {
        throw new TimeoutError(`no complete answer within ${options.timeoutMs} ms; the request was cancelled`, {
          ...(error instanceof LullError && error.requestId !== undefined ? { requestId: error.requestId } : {}),
        })
      }
      throw error
    }
  }

  async *#run(
    options: ChatOptions,
    state: AttemptState = { outputTokens: 0 },
    excluded: ReadonlySet<string> = new Set(),
  ): AsyncGenerator<ChatEvent> {
    const { signal } = options
    if (signal?.aborted) throw new AbortError()
    const requestId = createRequestId()
    // When resuming (the lost nodes excluded), finding no node is a passing state: nodes come and go. It is a
    // retryable no-capacity, retried with backoff like any failure before a first token, the catalogue fetched anew.
    const noneRightNow = (why: string) =>
      errorFromWire(
        ErrorCode.NoCapacity,
        `no node other than the lost one(s) can continue the answer right now: ${why}`,
      )
    let served: NodeInfo[]
    try {
      served = await this.#nodesFor(options.model, signal)
    } catch (error) {
      if (excluded.size > 0 && error instanceof ModelNotFoundError) throw noneRightNow(error.message)
      throw error
    }
    const nodes = served.filter((node) => !excluded.has(node.nodeId))
    if (nodes.length === 0) throw noneRightNow(`only the lost one(s) serve model "${options.model}"`)
    const candidates = chooseCandidates(nodes, this.#candidates)
    const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS
    const body = encodeRequestBody({
      messages: options.messages,
      maxTokens,
      temperature: options.temperature ?? 0.8,
      ...(options.topP === undefined ? {} : { topP: options.topP }),
      ...(options.topK === undefined ? {} : { topK: options.topK }),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.stop === undefined ? {} : { stop: options.stop }),
      createdAtMs: Date.now(),
      nonce: randomBytes(16),
    })
    const header: RequestHeader = {
      model: options.model,
      maxTokens,
      // encodeRequestBody pads every body to exactly one of REQUEST_BODY_BUCKETS_BYTES: its length is the bucket.
      sizeBucket: body.byteLength,
      candidates: candidates.map((node) => node.nodeId),
      priority: options.priority ?? 0,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    }
    // A place on a session is taken (the session opened, if need be) while the prompt is sealed: both are on the way
    // to the first token.
    const starting = this.#startOnSession(requestId, signal)
    // Awaited below, after sealing; until then a failure must not count as an unhandled rejection.
    starting.catch(() => {})
    let submit: ClientToCoordinator
    let contentKey: Uint8Array
    try {
      const sealing = await sealRequest(
        body,
        candidates.map((node) => ({ nodeId: node.nodeId, publicKey: node.certificate.hpkePublicKey })),
        encodeHeaderAad(header),
        { senders: this.#senders },
      )
      contentKey = sealing.contentKey
      submit = {
        type: 'submit',
        ...(this.#apiKey === undefined ? {} : { apiKey: this.#apiKey }),
        requestId,
        header,
        sealed: sealing.sealed,
      }
      // What the coordinator could not read it would answer without a request id, which ends a whole session: a
      // request the schema refuses fails here, alone.
      const checked = CLIENT_TO_COORDINATOR.safeParse(submit)
      if (!checked.success) {
        throw new LullError(ErrorCode.InvalidRequest, `the request is not valid: ${checked.error.issues[0]?.message}`, {
          requestId,
        })
      }
    } catch (error) {
      starting.then(
        (call) => call.release(),
        () => {},
      )
      throw error
    }
    const call = await starting
    const onAbort = (): void => call.fail(new AbortError(undefined, { requestId }))
    signal?.addEventListener('abort', onAbort, { once: true })
    let finished = false
    // Once the first token is in (or the attempt is over), the sender contexts used are replaced. Earlier, that
    // work would compete with this request on its way to the first token.
    let preparing = false
    const prepareNext = (): void => {
      if (preparing) return
      preparing = true
      setImmediate(() => {
        if (!this.#closed) void this.#senders.refill()
      })
    }
    try {
      if (signal?.aborted) throw new AbortError(undefined, { requestId })
      await call.send(submit)
      let opener: ResponseOpener | undefined
      let nodeId: string | undefined
      let finish: { reason: FinishReason; usage: Usage } | undefined
      receiving: for await (const received of call) {
        // The stream broke after the answer's final sealed chunk: the answer is whole, only `end` was lost.
        if (!received.ok && finish !== undefined && opener?.finished === true) break
        if (!received.ok) throw received.error
        const message = received.message
        switch (message.type) {
          case 'dispatched':
            nodeId = message.nodeId
            state.nodeId = nodeId
            opener = new ResponseOpener(contentKey)
            options.onDispatched?.({ nodeId, requestId })
            break
          case 'chunk': {
            if (opener === undefined)
              throw new StreamTruncatedError('a chunk arrived before the request was dispatched', { requestId })
            prepareNext()
            const { plaintext } = opener.open(message.data)
            const piece = decodeResponsePiece(plaintext)
            if (piece.text.length > 0) {
              if (piece.outputTokens !== undefined) state.outputTokens = piece.outputTokens
              yield { type: 'text-delta', text: piece.text }
            }
            if (piece.finish !== undefined) {
              const { reason, promptTokens, outputTokens } = piece.finish
              finish = { reason, usage: { promptTokens, outputTokens } }
              state.outputTokens = outputTokens
            }
            break
          }
          case 'end':
            if (opener === undefined || nodeId === undefined || finish === undefined) {
              throw new StreamTruncatedError('the answer ended before its final sealed chunk', { requestId })
            }
            opener.finish()
            finished = true
            yield { type: 'finish', finishReason: finish.reason, usage: finish.usage, nodeId, requestId }
            return
          case 'error':
            // After the final sealed chunk the answer is whole: an error that follows (its node left before its
            // `end`) takes nothing from it. Resuming would append a second ending.
            if (finish !== undefined && opener?.finished === true) break receiving
            throw errorFromWire(message.code, message.message, requestId, message.retryAfterMs)
          case 'catalogue':
            break
        }
      }
      if (signal?.aborted) throw new AbortError(undefined, { requestId })
      if (finish !== undefined && opener?.finished === true && nodeId !== undefined) {
        // The final chunk is authenticated and carries the node's counts: the coordinator went away (or the stream
        // broke) before relaying `end`, but nothing of the answer is missing, so it ends here rather than resuming
        // (a resume would append text past the end).
        finished = true
        yield { type: 'finish', finishReason: finish.reason, usage: finish.usage, nodeId, requestId }
        return
      }
      if (opener === undefined) {
        // Nothing came back for it: the coordinator closed the session (it is stopping, say) around the submit.
        throw new ConnectionError('the coordinator closed the stream before taking the request', { requestId })
      }
      throw new LullError(ErrorCode.NodeLost, 'the coordinator closed the stream before the answer ended', {
        requestId,
      })
    } catch (error) {
      if (error instanceof LullError) throw error
      if (signal?.aborted) throw new AbortError(undefined, { requestId })
      throw new ConnectionError(`the stream to the coordinator broke: ${(error as Error).message}`, {
        cause: error,
        requestId,
      })
    } finally {
      prepareNext()
      signal?.removeEventListener('abort', onAbort)
      // The caller left early, aborted, or the answer failed: tell the coordinator to stop the node.
      if (!finished) call.trySend({ type: 'cancel', requestId })
      call.release()
    }
  }

  async #nodesFor(model: string, signal: AbortSignal | undefined) {
    const fresh = this.#catalogue !== undefined && Date.now() - this.#catalogue.fetchedAtMs < this.#catalogueMaxAgeMs
    const models =
      fresh && this.#catalogue !== undefined
        ? this.#catalogue.models
        : await this.models({ ...(signal ? { signal } : {}) })
    if (models.length === 0) {
      // No node at all, as just after the coordinator restarted: a passing state, not a wrong model name. Retryable
      // (and this empty catalogue is not kept), so the request waits for nodes to come back, with backoff.
      this.#catalogue = undefined
      throw errorFromWire(
        ErrorCode.NoCapacity,
        `no node with a valid certificate serves any model right now (nodes may be starting or reconnecting); asked for "${model}"`,
      )
    }
    const nodes = models.find((entry) => entry.id === model)?.nodes
    if (nodes === undefined || nodes.length === 0) {
      const served = models.map((entry) => entry.id).join(', ')
      throw new ModelNotFoundError(`no node with a valid certificate serves model "${model}" (served: ${served})`)
    }
    const trusted = this.#trustedNodes
    if (trusted === undefined) return nodes
    const allowed = nodes.filter((node) => trusted.has(node.nodeId))
    if (allowed.length === 0) {
      throw new ModelNotFoundError(
        `none of the ${trusted.size} trusted node(s) serves model "${model}" right now (${nodes.length} other node(s) do; add them to trustedNodes to use them)`,
      )
    }
    return allowed
  }

  /**
   * Starts `requestId` on a session with room for it: one already open, or the one being opened (opened if none is).
   * The place is taken at once, so requests started together never overfill a session.
   */
  async #startOnSession(requestId: string, signal: AbortSignal | undefined): Promise<SessionRequest> {
    for (;;) {
      if (signal?.aborted) throw new AbortError(undefined, { requestId })
      const usable = this.#sessions.find((session) => session.usable)
      if (usable !== undefined) return usable.start(requestId)
      // Sessions that ended, or sit idle past reuse, are closed and forgotten.
      this.#sessions = this.#sessions.filter((session) => {
        if (!session.ended && session.size > 0) return true
        session.close()
        return false
      })
      // Other waiters may fill the new session first: look again once it is open.
      await unlessAborted(this.#openSession(), signal)
    }
  }

  #prepareSession(): void {
    if (this.#closed || this.#sessions.some((session) => session.usable)) return
    this.#openSession().catch(() => {})
  }

  #openSession(): Promise<RequestSession> {
    this.#opening ??= this.#newStream(undefined)
      .then((stream) => {
        const session = new RequestSession(stream)
        if (this.#closed) session.close(new Error('client closed'))
        else this.#sessions.push(session)
        return session
      })
      .finally(() => {
        this.#opening = undefined
      })
    return this.#opening
  }

  async #newStream(signal: AbortSignal | undefined): Promise<Stream> {
    try {
      // Streams are opened on the held connection directly: going through the dialler for each one (address
      // resolution, peer store updates) cost several milliseconds of every request's time to first token.
      let connection = this.#connection
      if (connection === undefined || connection.status !== 'open') {
        connection = await this.#host.dial(this.#coordinator, signal === undefined ? {} : { signal })
        this.#connection = connection
      }
      return await connection.newStream(CLIENT_PROTOCOL, {
        // Matches the coordinator's limit; libp2p's default (64) would cap concurrent requests lower.
        maxOutboundStreams: MAX_CLIENT_STREAMS_PER_CONNECTION,
        ...(signal === undefined ? {} : { signal }),
      })
    } catch (error) {
      if (signal?.aborted) throw new AbortError()
      throw new ConnectionError(`cannot open a stream to the coordinator: ${(error as Error).message}`, {
        cause: error,
      })
    }
  }
}

export { LullError }
