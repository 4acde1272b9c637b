/**
 * The OpenAI request bodies the proxy accepts, validated at the boundary, and their translation to Lull options.
 * Parameters that would change what the caller gets and that Lull cannot honour (n > 1, tools, logprobs, echo, …)
 * are refused with a 400 naming the parameter, never silently ignored.
 */
import type { ChatMessage } from '@lull/proto'
import { z } from 'zod'
import type { ChatOptions } from '../client-options.js'

/** Most stop sequences OpenAI accepts. */
const MAX_STOP_SEQUENCES = 4

/** An OpenAI-format 400: which parameter, and why. */
export class InvalidRequestParameterError extends Error {
  override name = 'InvalidRequestParameterError'
  constructor(
    message: string,
    readonly param: string | null,
    readonly code: string = 'invalid_value',
  ) {
    super(message)
  }
}

const textPart = z.object({ type: z.literal('text'), text: z.string() })
const messageSchema = z.object({
  role: z.string(),
  content: z.union([z.string(), z.array(z.object({ type: z.string() }).loose())]).nullish(),
  name: z.string().optional(),
})

const samplingSchema = {
  model: z.string().min(1).max(256),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().min(1).max(1_000_000).nullish(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .nullish(),
  stop: z.union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(MAX_STOP_SEQUENCES)]).nullish(),
  n: z.number().int().min(1).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).loose().nullish(),
  logprobs: z.unknown().optional(),
}

export const chatCompletionRequestSchema = z
  .object({
    ...samplingSchema,
    messages: z.array(messageSchema).min(1).max(256),
    max_completion_tokens: z.number().int().min(1).max(1_000_000).nullish(),
    tools: z.array(z.unknown()).nullish(),
    functions: z.array(z.unknown()).nullish(),
    response_format: z.object({ type: z.string() }).loose().nullish(),
  })
  .loose()
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>

export const completionRequestSchema = z
  .object({
    ...samplingSchema,
    prompt: z.union([z.string(), z.array(z.string()).length(1)]),
    echo: z.boolean().nullish(),
    suffix: z.string().nullish(),
    best_of: z.number().int().nullish(),
  })
  .loose()
export type CompletionRequest = z.infer<typeof completionRequestSchema>

/** Parses a body against `schema`, turning the first issue into an OpenAI-style 400 naming the parameter. */
export function parseRequest<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const param = issue === undefined || issue.path.length === 0 ? null : formatPath(issue.path)
  throw new InvalidRequestParameterError(
    `invalid ${param ?? 'request body'}: ${issue?.message ?? 'does not match the schema'}`,
    param,
  )
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, index) => (typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`))
    .join('')
}

/** Sampling options shared by both endpoints. OpenAI's defaults apply where the caller sets nothing. */
function sampling(
  request: ChatCompletionRequest | CompletionRequest,
  maxTokens: number | undefined,
): Omit<ChatOptions, 'messages'> {
  if ((request.n ?? 1) !== 1) {
    throw new InvalidRequestParameterError('n must be 1: Lull returns one choice per request', 'n', 'unsupported_value')
  }
  if (request.logprobs !== undefined && request.logprobs !== null && request.logprobs !== false) {
    throw new InvalidRequestParameterError('logprobs are not supported', 'logprobs', 'unsupported_parameter')
  }
  const stop = request.stop ?? undefined
  return {
    model: request.model,
    temperature: request.temperature ?? 1,
    ...(request.top_p == null ? {} : { topP: request.top_p }),
    ...(maxTokens === undefined ? {} : { maxTokens }),
    ...(request.seed == null ? {} : { seed: request.seed }),
    ...(stop === undefined ? {} : { stop: typeof stop === 'string' ? [stop] : stop }),
  }
}

/** A chat completion request as Lull chat options (without `signal`). */
export function chatOptionsFrom(request: ChatCompletionRequest): ChatOptions {
  if ((request.tools?.length ?? 0) > 0 || (request.functions?.length ?? 0) > 0) {
    throw new InvalidRequestParameterError('tools and functions are not supported', 'tools', 'unsupported_parameter')
  }
  if (request.response_format != null && request.response_format.type !== 'text') {
    throw new InvalidRequestParameterError(
      `response_format "${request.response_format.type}" is not supported; only "text"`,
      'response_format',
      'unsupported_value',
    )
  }
  const messages = request.messages.map((message, index) => chatMessageFrom(message, index))
  return { ...sampling(request, request.max_completion_tokens ?? request.max_tokens ?? undefined), messages }
}

/** OpenAI's documented default for `max_tokens` on the legacy completions endpoint. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16

/** A legacy completion request as Lull options: the prompt is sent as a single user message. */
export function completeOptionsFrom(request: CompletionRequest): Omit<ChatOptions, 'messages'> & { prompt: string } {
  if (request.echo === true) throw new InvalidRequestParameterError('echo is not supported', 'echo')
  if (request.suffix != null) throw new InvalidRequestParameterError('suffix is not supported', 'suffix')
  if ((request.best_of ?? 1) !== 1) throw new InvalidRequestParameterError('best_of must be 1', 'best_of')
  const prompt = typeof request.prompt === 'string' ? request.prompt : (request.prompt[0] as string)
  return { ...sampling(request, request.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS), prompt }
}

function chatMessageFrom(message: z.infer<typeof messageSchema>, index: number): ChatMessage {
  const role = message.role === 'developer' ? 'system' : message.role
  if (role !== 'system' && role !== 'user' && role !== 'assistant') {
    throw new InvalidRequestParameterError(
      `role "${message.role}" is not supported; use system, developer, user or assistant`,
      `messages[${index}].role`,
    )
  }
  const content = message.content ?? ''
  if (typeof content === 'string') return { role, content }
  const texts: string[] = []
  for (const [partIndex, part] of content.entries()) {
    const text = textPart.safeParse(part)
    if (!text.success) {
      throw new InvalidRequestParameterError(
        `content part of type "${part.type}" is not supported; only text`,
        `messages[${index}].content[${partIndex}]`,
      )
    }
    texts.push(text.data.text)
  }
  return { role, content: texts.join('') }
}
