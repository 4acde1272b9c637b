import type { ChatHistoryItem } from 'node-llama-cpp'
import { InvalidParamsError } from './errors.js'
import type { ChatMessage } from './types.js'

const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant'])

/**
 * Turns chat messages into node-llama-cpp's history, ending with the model turn for the reply: an empty one after a
 * user or system message, or, when the last message is the assistant's, that message itself, which
 * `LlamaChat.generateResponse` then continues (a partial answer being resumed) rather than starting a new turn.
 * The messages are used as given: no default system prompt is added.
 */
export function toChatHistory(messages: unknown): ChatHistoryItem[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new InvalidParamsError('messages', 'expected a non-empty array of messages')
  }
  const history: ChatHistoryItem[] = messages.map((message: Partial<ChatMessage> | null, index) => {
    if (typeof message !== 'object' || message === null || !ROLES.has(message.role as string)) {
      throw new InvalidParamsError(`messages[${index}].role`, "expected 'system', 'user' or 'assistant'")
    }
    if (typeof message.content !== 'string') {
      throw new InvalidParamsError(`messages[${index}].content`, 'expected a string')
    }
    switch (message.role) {
      case 'system':
        return { type: 'system', text: message.content }
      case 'user':
        return { type: 'user', text: message.content }
      default:
        return { type: 'model', response: [message.content] }
    }
  })
  if (history.at(-1)?.type !== 'model') history.push({ type: 'model', response: [] })
  return history
}
