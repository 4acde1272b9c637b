import {
  type ChatHistoryItem,
  getLlama,
  type Llama,
  type LlamaChatResponse,
  type LlamaContext,
  type LlamaModel,
} from 'node-llama-cpp'
import { runBenchmark } from './benchmark.js'
import { toChatHistory } from './chat-history.js'
import { continuedHistory, isContinuation, LeadingSpaceRestorer } from './continuation.js'
import { EngineBusyError, EngineDisposedError, InvalidParamsError } from './errors.js'
import { type SamplingParams, validateSamplingParams } from './sampling-params.js'
import { SequencePool, type Slot } from './sequence-pool.js'
import type { BenchmarkResult, EngineOptions, FinishReason, GenerateParams, GenerateResult } from './types.js'

/** Tokens per sequence when {@link EngineOptions.contextSize} is left out. */
export const DEFAULT_CONTEXT_SIZE_TOKENS = 2048

type StopReason = LlamaChatResponse['metadata']['stopReason']

function finishReasonOf(stopReason: StopReason): FinishReason {
  switch (stopReason) {
    case 'maxTokens':
      return 'length'
    case 'abort':
      return 'cancelled'
    default:
      // eogToken, stopGenerationTrigger (the chat template's end of turn), customStopTrigger, functionCalls
      return 'stop'
  }
}

function checkPositiveInteger(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new InvalidParamsError(field, `expected a positive integer, got ${String(value)}`)
  }
  return value
}

/**
 * One model loaded with one context of `slots` parallel sequences. Concurrent {@link generate} calls
 * run on different sequences and node-llama-cpp decodes them together in shared batches.
 */
export class Engine implements AsyncDisposable {
  readonly slots: number
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly lifetime = new AbortController()
  private disposing: Promise<void> | undefined

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly pool: SequencePool,
    private readonly vramTotal: number,
  ) {
    this.slots = pool.size
  }

  static async load(options: EngineOptions, { signal }: { signal?: AbortSignal } = {}): Promise<Engine> {
    const slots = checkPositiveInteger('slots', options.slots)
    const threads = checkPositiveInteger('threads', options.threads)
    const contextSize = checkPositiveInteger('contextSize', options.contextSize ?? DEFAULT_CONTEXT_SIZE_TOKENS)
    signal?.throwIfAborted()

    const llama = await getLlama({ gpu: options.gpu ?? 'auto', build: 'never', maxThreads: threads })
    try {
      signal?.throwIfAborted()
      const model = await llama.loadModel({ modelPath: options.modelPath, loadSignal: signal })
      const context = await model.createContext({ contextSize, sequences: slots, threads, createSignal: signal })
      const vram = await llama.getVramState()
      signal?.throwIfAborted()
      return new Engine(llama, model, context, new SequencePool(context, slots), vram.total)
    } catch (error) {
      await llama.dispose()
      throw error
    }
  }

  get busySlots(): number {
    return this.pool.busyCount
  }

  /** Tokens each sequence can hold (may be slightly above the requested size; llama.cpp pads it). */
  get contextSize(): number {
    return this.context.contextSize
  }

  get gpu(): 'metal' | 'cuda' | 'vulkan' | 'none' {
    return this.llama.gpu === false ? 'none' : this.llama.gpu
  }

  get vramTotalBytes(): number {
    return this.vramTotal
  }

  /**
   * Runs one request on a free sequence. onText gets each piece of decoded text as it is produced (in order), with
   * the number of tokens generated so far.
   * Resolves when done. Rejects with EngineBusyError if no slot is free and InvalidParamsError for bad params.
   * Aborting via signal stops generation promptly and resolves with finishReason 'cancelled'.
   */
  async generate(
    params: GenerateParams,
    onText: (text: string, outputTokens: number) => void,
    options: { signal?: AbortSignal } = {},
  ): Promise<GenerateResult> {
    if (this.disposing) throw new EngineDisposedError()
    const sampling = validateSamplingParams(params, this.contextSize)
    const history = continuedHistory(toChatHistory(params.messages), this.model)
    const slot = this.pool.tryAcquire()
    if (!slot) throw new EngineBusyError(this.slots)

    const run = this.runOnSlot(slot, history, sampling, onText, options.signal)
    this.inFlight.add(run)
    try {
      return await run
    } finally {
      this.inFlight.delete(run)
    }
  }

  private async runOnSlot(
    slot: Slot,
    history: ChatHistoryItem[],
    sampling: SamplingParams,
    onText: (text: string, outputTokens: number) => void,
    signal: AbortSignal | undefined,
  ): Promise<GenerateResult> {
    const stopper = new AbortController()
    const signals = signal ? [signal, this.lifetime.signal, stopper.signal] : [this.lifetime.signal, stopper.signal]
    const combined = AbortSignal.any(signals)
    let callbackError: { error: unknown } | undefined
    const meterBefore = slot.sequence.tokenMeter.getState()
    let finishReason: FinishReason = 'cancelled'
    const spacing = new LeadingSpaceRestorer(this.model, isContinuation(history))
    let generatedTokens = 0
    try {
      if (!combined.aborted) {
        try {
          const response = await slot.chat.generateResponse(history, {
            onToken: (tokens) => {
              generatedTokens += tokens.length
              spacing.observe(tokens)
            },
            onTextChunk: (text) => {
              if (callbackError) return
              try {
                onText(spacing.restore(text), generatedTokens)
              } catch (error) {
                callbackError = { error }
                stopper.abort()
              }
            },
            maxTokens: sampling.maxTokens,
            temperature: sampling.temperature,
            topP: sampling.topP,
            topK: sampling.topK,
            seed: sampling.seed,
            customStopTriggers: sampling.stop.length > 0 ? sampling.stop : undefined,
            signal: combined,
            stopOnAbortSignal: true,
          })
          finishReason = finishReasonOf(response.metadata.stopReason)
        } catch (error) {
          // Aborted before the first token: node-llama-cpp throws the abort reason instead of returning.
          if (!combined.aborted) throw error
        }
      }
      if (callbackError) throw callbackError.error
      // The meter counts a token "output" when its logits are read: the last prompt token and each
      // generated token fed back. So input + 1 is the prompt and output is the tokens sampled.
      const used = slot.sequence.tokenMeter.diff(meterBefore)
      const sampled = used.usedOutputTokens
      return {
        finishReason,
        promptTokens: sampled > 0 ? used.usedInputTokens + 1 : used.usedInputTokens,
        outputTokens: sampled,
      }
    } finally {
      await this.pool.release(slot)
    }
  }

  /** Measures prefill and decode tokens/s on this model (a short fixed run, about a second on lull-tiny). */
  async benchmark({ signal }: { signal?: AbortSignal } = {}): Promise<BenchmarkResult> {
    if (this.disposing) throw new EngineDisposedError()
    const slot = this.pool.tryAcquire()
    if (!slot) throw new EngineBusyError(this.slots)
    const combined = AbortSignal.any(signal ? [signal, this.lifetime.signal] : [this.lifetime.signal])
    const run = runBenchmark(this.model, slot.sequence, { signal: combined }).finally(() => this.pool.release(slot))
    this.inFlight.add(run)
    try {
      return await run
    } finally {
      this.inFlight.delete(run)
    }
  }

  /** Cancels running requests (they resolve as 'cancelled'), waits for them, then frees the model. */
  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      this.lifetime.abort()
      await Promise.allSettled([...this.inFlight])
      this.pool.dispose()
      await this.context.dispose()
      await this.model.dispose()
      await this.llama.dispose()
    })()
    return this.disposing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose()
  }
}
