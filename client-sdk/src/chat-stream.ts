import type { FinishReason, Usage } from '@lull/proto'

/** A piece of the answer's text, in order. */
export interface TextDeltaEvent {
  type: 'text-delta'
  text: string
}

/** The answer is complete. Always the last event. */
export interface FinishEvent {
  type: 'finish'
  finishReason: FinishReason
  /**
   * Token counts of the whole answer, as the nodes counted them. For a resumed answer, `outputTokens` adds the lost
   * parts' tokens to the finishing part's, and `promptTokens` is the finishing part's prompt less the resumed text
   * (the original prompt's count). When the lost parts used the whole `maxTokens`, no part finished: `finishReason`
   * is `length` and `promptTokens` is 0 (unknown).
   */
  usage: Usage
  /** The node that ran the request (the one that finished it, for a resumed answer). */
  nodeId: string
  requestId: string
}

export type ChatEvent = TextDeltaEvent | FinishEvent

export interface ChatResult {
  text: string
  finishReason: FinishReason
  usage: Usage
  nodeId: string
  requestId: string
}

/**
 * The events of one request. Iterate it once with `for await` (leaving the loop early cancels the request), or
 * call `final()` / `text()` to wait for the whole answer.
 */
export class ChatStream implements AsyncIterable<ChatEvent> {
  readonly #events: AsyncGenerator<ChatEvent>
  #taken = false

  constructor(events: AsyncGenerator<ChatEvent>) {
    this.#events = events
  }

  [Symbol.asyncIterator](): AsyncGenerator<ChatEvent> {
    if (this.#taken) throw new Error('a ChatStream can be consumed only once')
    this.#taken = true
    return this.#events
  }

  /** Waits for the whole answer. */
  async final(): Promise<ChatResult> {
    let text = ''
    for await (const event of this) {
      if (event.type === 'text-delta') text += event.text
      else
        return {
          text,
          finishReason: event.finishReason,
          usage: event.usage,
          nodeId: event.nodeId,
          requestId: event.requestId,
        }
    }
    throw new Error('the event stream ended without a finish event')
  }

  /** Waits for the whole answer and returns its text. */
  async text(): Promise<string> {
    return (await this.final()).text
  }
}
