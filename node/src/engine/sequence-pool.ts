import { LlamaChat, type LlamaContext, type LlamaContextSequence } from 'node-llama-cpp'

/** One parallel sequence of the context and the chat driver bound to it. */
export interface Slot {
  readonly index: number
  readonly sequence: LlamaContextSequence
  readonly chat: LlamaChat
}

/**
 * The context's sequences, created once and reused: a request takes a free one and, when done,
 * the sequence's history is cleared before it is handed out again. The clear runs between two batches while the
 * other sequences go on generating: patches/node-llama-cpp+3.22.1.patch lets node-llama-cpp's batch loop hand its
 * lock to a waiting erase (unpatched, the erase waited until no sequence had a decode queued, i.e. for every
 * concurrent request to end; docs/decisions/node-operations.md).
 */
export class SequencePool {
  private readonly slots: Slot[]
  private readonly free: Slot[]

  constructor(context: LlamaContext, count: number) {
    this.slots = Array.from({ length: count }, (_, index) => {
      const sequence = context.getSequence()
      return { index, sequence, chat: new LlamaChat({ contextSequence: sequence, chatWrapper: 'auto' }) }
    })
    // Hand out low indexes first (pop from the end).
    this.free = [...this.slots].reverse()
  }

  get size(): number {
    return this.slots.length
  }

  get busyCount(): number {
    return this.slots.length - this.free.length
  }

  /** Takes a free slot, or returns undefined when all are busy. Synchronous, so callers cannot race. */
  tryAcquire(): Slot | undefined {
    return this.free.pop()
  }

  /** Clears the slot's sequence and makes it available again. */
  async release(slot: Slot): Promise<void> {
    try {
      if (!slot.sequence.disposed) await slot.sequence.clearHistory()
    } finally {
      this.free.push(slot)
    }
  }

  dispose(): void {
    for (const slot of this.slots) slot.chat.dispose({ disposeSequence: true })
    this.free.length = 0
  }
}
