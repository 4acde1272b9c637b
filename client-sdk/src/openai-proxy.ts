/**
 * An OpenAI-compatible HTTP server on 127.0.0.1. Any OpenAI client pointed at it gets end-to-end encryption with
 * no code change: each request is sealed here, on this machine, for the node that will run it.
 *
 * Serves `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions` and `POST /v1/completions`, with and
 * without `stream`. A client that disconnects cancels its request upstream.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FinishReason, Usage } from '@lull/proto'
import type { ModelInfo } from './catalogue.js'
import type { ChatStream } from './chat-stream.js'
import { LullClient } from './client.js'
import type { ChatOptions, CompleteOptions } from './client-options.js'
import { type HttpError, httpError, httpErrorFrom } from './internal/openai-errors.js'
import {
  chatCompletionRequestSchema,
  chatOptionsFrom,
  completeOptionsFrom,
  completionRequestSchema,
  parseRequest,
} from './internal/openai-request.js'

/** @default 4711 (the coordinator's default port is 4710) */
export const DEFAULT_PROXY_PORT = 4711
/** Largest request body accepted, in bytes. */
export const DEFAULT_PROXY_MAX_BODY_BYTES = 4 * 1024 * 1024
const HOST = '127.0.0.1'

/** What the proxy needs from a client; a `LullClient` is one. */
export interface ProxyClient {
  models(options?: { signal?: AbortSignal }): Promise<ModelInfo[]>
  chat(options: ChatOptions): ChatStream
  complete(options: CompleteOptions): ChatStream
}

export type ProxyServerOptions = (
  | {
      /** A client the caller owns; the proxy does not close it. */
      client: ProxyClient
    }
  | {
      /** The coordinator to connect to; the proxy owns the client and closes it with the server. */
      coordinator: string
      /** The key the coordinator knows this user by. */
      apiKey?: string
    }
) & {
  /** 0 picks a free port. @default 4711 */
  port?: number
  /** @default 4 MiB */
  maxBodyBytes?: number
}

export interface ProxyServer extends AsyncDisposable {
  /** The base URL to give an OpenAI client, e.g. `http://127.0.0.1:4711/v1`. */
  readonly baseUrl: string
  readonly port: number
  close(): Promise<void>
}

/** Starts the proxy, listening on 127.0.0.1 only. */
export async function createProxyServer(options: ProxyServerOptions): Promise<ProxyServer> {
  const owned =
    'client' in options
      ? undefined
      : await LullClient.connect({
          coordinator: options.coordinator,
          ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
        })
  const client: ProxyClient = 'client' in options ? options.client : (owned as LullClient)
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_PROXY_MAX_BODY_BYTES
  const createdAtSeconds = Math.floor(Date.now() / 1000)
  const server = createServer((request, response) => {
    handle(client, request, response, { maxBodyBytes, createdAtSeconds }).catch((error: unknown) => {
      if (!response.headersSent) sendError(response, httpErrorFrom(error))
      else response.destroy()
    })
  })
  try {
    await listen(server, options.port ?? DEFAULT_PROXY_PORT)
  } catch (error) {
    await owned?.close()
    throw error
  }
  const port = (server.address() as AddressInfo).port
  const close = async (): Promise<void> => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await owned?.close()
  }
  return { baseUrl: `http://${HOST}:${port}/v1`, port, close, [Symbol.asyncDispose]: close }
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, HOST, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

interface HandlerContext {
  maxBodyBytes: number
  createdAtSeconds: number
}

async function handle(
  client: ProxyClient,
  request: IncomingMessage,
  response: ServerResponse,
  context: HandlerContext,
): Promise<void> {
  const path = new URL(request.url ?? '/', `http://${HOST}`).pathname.replace(/\/+$/, '')
  // The caller leaving (closed socket, Ctrl-C, `break` in its loop) cancels the request upstream.
  const controller = new AbortController()
  response.on('close', () => {
    if (!response.writableFinished) controller.abort()
  })
  const route = routeOf(request.method ?? 'GET', path)
  if (route === 'method-not-allowed') {
    sendError(
      response,
      httpError(405, 'invalid_request_error', 'method_not_allowed', `${request.method} ${path} is not allowed`),
    )
    return
  }
  if (route === undefined) {
    sendError(
      response,
      httpError(404, 'invalid_request_error', 'unknown_url', `unknown URL: ${request.method} ${path}`),
    )
    return
  }
  if (route === 'models') {
    const models = await client.models({ signal: controller.signal })
    sendJson(response, 200, { object: 'list', data: models.map((model) => modelObject(model.id, context)) })
    return
  }
  if (route.startsWith('model:')) {
    const id = decodeURIComponent(route.slice('model:'.length))
    const model = (await client.models({ signal: controller.signal })).find((entry) => entry.id === id)
    if (model === undefined) {
      sendError(
        response,
        httpError(404, 'invalid_request_error', 'model_not_found', `no node serves model "${id}"`, 'model'),
      )
    } else sendJson(response, 200, modelObject(model.id, context))
    return
  }
  const body = await readJson(request, context.maxBodyBytes)
  if ('status' in body) {
    sendError(response, body)
    return
  }
  const signal = controller.signal
  if (route === 'chat') {
    const parsed = parseRequest(chatCompletionRequestSchema, body.value)
    const stream = client.chat({ ...chatOptionsFrom(parsed), signal })
    const shape = {
      kind: 'chat' as const,
      model: parsed.model,
      includeUsage: parsed.stream_options?.include_usage === true,
    }
    if (parsed.stream === true) await streamAnswer(stream, response, shape)
    else await sendAnswer(stream, response, shape)
  } else {
    const parsed = parseRequest(completionRequestSchema, body.value)
    const stream = client.complete({ ...completeOptionsFrom(parsed), signal })
    const shape = {
      kind: 'completion' as const,
      model: parsed.model,
      includeUsage: parsed.stream_options?.include_usage === true,
    }
    if (parsed.stream === true) await streamAnswer(stream, response, shape)
    else await sendAnswer(stream, response, shape)
  }
}

type Route = 'models' | `model:${string}` | 'chat' | 'completion' | 'method-not-allowed' | undefined

function routeOf(method: string, path: string): Route {
  const routes: Record<string, { method: string; route: Route }> = {
    '/v1/models': { method: 'GET', route: 'models' },
    '/v1/chat/completions': { method: 'POST', route: 'chat' },
    '/v1/completions': { method: 'POST', route: 'completion' },
  }
  const entry = routes[path]
  if (entry !== undefined) return method === entry.method ? entry.route : 'method-not-allowed'
  if (path.startsWith('/v1/models/'))
    return method === 'GET' ? `model:${path.slice('/v1/models/'.length)}` : 'method-not-allowed'
  return undefined
}

function modelObject(id: string, context: HandlerContext) {
  return { id, object: 'model', created: context.createdAtSeconds, owned_by: 'lull' }
}

async function readJson(request: IncomingMessage, maxBodyBytes: number): Promise<{ value: unknown } | HttpError> {
  const declared = Number(request.headers['content-length'])
  const tooLarge = httpError(
    413,
    'invalid_request_error',
    'request_too_large',
    `the request body exceeds ${maxBodyBytes} bytes`,
  )
  if (Number.isFinite(declared) && declared > maxBodyBytes) return tooLarge
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > maxBodyBytes) return tooLarge
    chunks.push(chunk)
  }
  try {
    return { value: JSON.parse(Buffer.concat(chunks).toString('utf8')) }
  } catch (error) {
    return httpError(
      400,
      'invalid_request_error',
      'invalid_json',
      `the request body is not valid JSON: ${(error as Error).message}`,
    )
  }
}

interface AnswerShape {
  kind: 'chat' | 'completion'
  model: string
  includeUsage: boolean
}

function usageObject(usage: Usage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.promptTokens + usage.outputTokens,
  }
}

/** OpenAI has no "cancelled": the node stopped early, which a caller reads best as an ended answer. */
function finishReasonOf(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop'
}

function answerId(kind: AnswerShape['kind']): string {
  return `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`
}

async function sendAnswer(stream: ChatStream, response: ServerResponse, shape: AnswerShape): Promise<void> {
  const result = await stream.final()
  const finishReason = finishReasonOf(result.finishReason)
  const common = { id: answerId(shape.kind), created: Math.floor(Date.now() / 1000), model: shape.model }
  const choice =
    shape.kind === 'chat'
      ? {
          index: 0,
          message: { role: 'assistant', content: result.text, refusal: null },
          logprobs: null,
          finish_reason: finishReason,
        }
      : { index: 0, text: result.text, logprobs: null, finish_reason: finishReason }
  sendJson(
    response,
    200,
    {
      ...common,
      object: shape.kind === 'chat' ? 'chat.completion' : 'text_completion',
      choices: [choice],
      usage: usageObject(result.usage),
      system_fingerprint: null,
    },
    { 'x-lull-node-id': result.nodeId, 'x-request-id': result.requestId },
  )
}

/**
 * Streams server-sent events in OpenAI's chunk format, ending with `data: [DONE]`. Headers wait for the first
 * event, so that failures before any text (unknown model, no capacity) still get their proper HTTP status. A
 * failure after that arrives as a `data: {"error": …}` event, which OpenAI clients raise as an error.
 */
async function streamAnswer(stream: ChatStream, response: ServerResponse, shape: AnswerShape): Promise<void> {
  const id = answerId(shape.kind)
  const created = Math.floor(Date.now() / 1000)
  const object = shape.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'
  const usageField = shape.includeUsage ? { usage: null } : {}
  const send = (data: unknown): void => {
    response.write(`data: ${JSON.stringify(data)}\n\n`)
  }
  const chunk = (text: string | undefined, finishReason: 'stop' | 'length' | null, first = false) => {
    const choice =
      shape.kind === 'chat'
        ? {
            index: 0,
            delta: text === undefined ? {} : first ? { role: 'assistant', content: text } : { content: text },
            logprobs: null,
            finish_reason: finishReason,
          }
        : { index: 0, text: text ?? '', logprobs: null, finish_reason: finishReason }
    return { id, object, created, model: shape.model, system_fingerprint: null, choices: [choice], ...usageField }
  }
  let started = false
  const start = (): void => {
    started = true
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    response.flushHeaders()
    if (shape.kind === 'chat') send(chunk('', null, true))
  }
  try {
    for await (const event of stream) {
      if (!started) start()
      if (event.type === 'text-delta') {
        send(chunk(event.text, null))
        continue
      }
      send(chunk(shape.kind === 'chat' ? undefined : '', finishReasonOf(event.finishReason)))
      if (shape.includeUsage) {
        send({
          id,
          object,
          created,
          model: shape.model,
          system_fingerprint: null,
          choices: [],
          usage: usageObject(event.usage),
        })
      }
    }
  } catch (error) {
    if (!started) throw error
    if (response.destroyed) return
    send(httpErrorFrom(error).body)
  }
  if (!started) start()
  response.end('data: [DONE]\n\n')
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  })
  response.end(text)
}

function sendError(response: ServerResponse, error: HttpError): void {
  if (response.destroyed) return
  sendJson(
    response,
    error.status,
    error.body,
    error.retryAfterSeconds === undefined ? {} : { 'retry-after': String(error.retryAfterSeconds) },
  )
}
