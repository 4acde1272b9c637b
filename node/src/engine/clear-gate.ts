import type { LlamaContextSequence, Token } from 'node-llama-cpp'

type Evaluation = ReturnType<LlamaContextSequence['evaluate']>
/** What LlamaChat hands back into an evaluation for its next step: a replacement token (or tokens), or nothing. */
type StepInput = Token | Token[] | undefined

/**
 * Lets one sequence be cleared while the others keep generating.
 *
 * node-llama-cpp erases a sequence's tokens (`clearHistory`) under its context's lock, and the context's batch
 * loop holds that lock for as long as any sequence has a decode queued. So with other requests generating, a
 * finished sequence could not be cleared, and its request not end nor its slot take another, until every one of
 * them had ended (measured: a 10-token answer next to 128-token ones took as long as they did). The gate lets the
 * loop run dry instead: while a clear waits, each sequence pauses before it asks for its next token, the decodes
 * already queued finish, the loop lets go of the lock, the clear runs, and the paused sequences go on.
 */
export class ClearGate {
  #clearing = 0
  #reopened: Promise<void> | undefined
  #reopen: (() => void) | undefined

  /** Routes the sequence's `evaluate` (what LlamaChat generates through) through the gate. */
  install(sequence: LlamaContextSequence): void {
    const evaluate = sequence.evaluate.bind(sequence)
    sequence.evaluate = (tokens, options) => this.#gated(evaluate(tokens, options))
  }

  /** Clears `sequence`, holding every gated sequence's next token until that is done. */
  async clear(sequence: LlamaContextSequence): Promise<void> {
    if (this.#clearing++ === 0) {
      this.#reopened = new Promise((resolve) => {
        this.#reopen = resolve
      })
    }
    try {
      await sequence.clearHistory()
    } finally {
      if (--this.#clearing === 0) {
        this.#reopen?.()
        this.#reopened = undefined
        this.#reopen = undefined
      }
    }
  }

  /** Passes `inner` through, waiting for the gate before each step (each step queues one decode). */
  async *#gated(inner: Evaluation): Evaluation {
    let input: StepInput
    try {
      while (true) {
        while (this.#reopened !== undefined) await this.#reopened
        const { value, done } = await inner.next(input)
        if (done === true) return
        input = (yield value) as StepInput
      }
    } finally {
      await inner.return()
    }
  }
}
