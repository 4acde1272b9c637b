import type { ChatMessage } from '@lull/proto'

/**
 * The messages that continue an answer cut short: the original messages and the text received so far as the
 * assistant's turn, which the node continues (appended to the last message when it already is the assistant's).
 */
export function continuationOf(messages: readonly ChatMessage[], received: string): ChatMessage[] {
  const last = messages.at(-1)
  if (last?.role === 'assistant') return [...messages.slice(0, -1), { ...last, content: last.content + received }]
  return [...messages, { role: 'assistant', content: received }]
}
