import type { ChatHistoryItem, LlamaModel, Token } from 'node-llama-cpp'

/**
 * Continuing a partial answer (a trailing assistant message) so that partial + continuation is exactly the answer
 * the model would have given in one go. Two details of SentencePiece-style tokenizers (lull-tiny, Llama 2) get in
 * the way, both about the space that such tokenizers fold into the start of a word token (`▁The`):
 *
 * 1. A fresh answer's first token is usually such a word token, and its leading space is dropped when the text is
 *    decoded (`▁The` → `The`). Re-tokenizing that text without the space gives other tokens (`T`, `h`, `e`), so the
 *    model would continue from a context it never produced. {@link continuedHistory} adds the space back before the
 *    partial answer when the tokenizer drops it again on decoding, so the prompt holds the original tokens.
 * 2. The continuation's first token is decoded alone too, so its leading space is dropped (`▁children` →
 *    `children`), and the joined answer would read `Thechildren`. {@link LeadingSpaceRestorer} puts it back.
 */

/** The partial answer being continued: the text of the trailing model turn, or undefined for a fresh answer. */
function partialAnswerOf(history: readonly ChatHistoryItem[]): string | undefined {
  const last = history.at(-1)
  if (last?.type !== 'model') return undefined
  const text = last.response.filter((part): part is string => typeof part === 'string').join('')
  return text === '' ? undefined : text
}

/** Whether the history ends with a non-empty model turn, which the engine continues rather than answers anew. */
export function isContinuation(history: readonly ChatHistoryItem[]): boolean {
  return partialAnswerOf(history) !== undefined
}

/**
 * The history to generate from: unchanged for a fresh answer; for a continuation, the partial answer prefixed with
 * the space that decoding its first token dropped, when this model's tokenizer drops it (and only then: a
 * byte-level BPE tokenizer keeps spaces, so its text is used as is).
 */
export function continuedHistory(history: readonly ChatHistoryItem[], model: LlamaModel): ChatHistoryItem[] {
  const partial = partialAnswerOf(history)
  if (partial === undefined || /^\s/.test(partial)) return [...history]
  const spaced = ` ${partial}`
  const tokens = model.tokenize(spaced, false, 'trimLeadingSpace')
  if (model.detokenize(tokens) !== partial) return [...history]
  return [...history.slice(0, -1), { type: 'model', response: [spaced] }]
}

/**
 * Restores the leading space of a continuation's first token, which node-llama-cpp's streamed text drops because
 * it decodes the first token without the tokens before it. Feed it every generated token (`onToken`) and pass each
 * text chunk through {@link restore}. Inactive (a pass-through) for fresh answers, whose first space is meant to go.
 */
export class LeadingSpaceRestorer {
  readonly #model: LlamaModel
  #firstToken: Token | undefined
  #pending: boolean

  constructor(model: LlamaModel, active: boolean) {
    this.#model = model
    this.#pending = active
  }

  /** Records the generated tokens (only the first one matters). */
  observe(tokens: readonly Token[]): void {
    if (this.#firstToken === undefined && tokens.length > 0) this.#firstToken = tokens[0]
  }

  /** The chunk as it should be appended to the partial answer. */
  restore(chunk: string): string {
    if (!this.#pending || chunk === '' || this.#firstToken === undefined) return chunk
    this.#pending = false
    const token = this.#firstToken
    // Decoded after a word ("a"), the token shows the space it carries; decoded alone, it loses it.
    const trail = this.#model.tokenize('a', false, 'trimLeadingSpace')
    const inContext = this.#model.detokenize([token], false, trail)
    const alone = this.#model.detokenize([token])
    const dropped = inContext.length - alone.length
    if (dropped <= 0 || !inContext.endsWith(alone)) return chunk
    const space = inContext.slice(0, dropped)
    return chunk.startsWith(space) ? chunk : space + chunk
  }
}
