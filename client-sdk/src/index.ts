/**
 * @lull/client-sdk: submit prompts to a Lull network so that only the node that runs them can read them.
 *
 * ```ts
 * const client = await LullClient.connect({ coordinator })
 * for await (const event of client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'Hi' }] })) {
 *   if (event.type === 'text-delta') process.stdout.write(event.text)
 * }
 * ```
 */
/** The message, finish reason and usage shapes requests and answers use. */
export type { ChatMessage, FinishReason, Usage } from '@lull/proto'
export type { ModelInfo, NodeInfo } from './catalogue.js'
export { type ChatEvent, type ChatResult, ChatStream, type FinishEvent, type TextDeltaEvent } from './chat-stream.js'
export { LullClient } from './client.js'
export type { ChatOptions, CompleteOptions, DispatchedInfo, LullClientOptions } from './client-options.js'
export * from './errors.js'
export { DEFAULT_MAX_RETRIES, type RetryInfo } from './internal/retry-policy.js'
export {
  createProxyServer,
  DEFAULT_PROXY_MAX_BODY_BYTES,
  DEFAULT_PROXY_PORT,
  type ProxyClient,
  type ProxyServer,
  type ProxyServerOptions,
} from './openai-proxy.js'
