export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface GenerateParams {
  messages: ChatMessage[]
  /** Most tokens to generate; clamped to the engine's per-sequence context size. */
  maxTokens: number
  /** 0..2; 0 = greedy. */
  temperature: number
  /** 0..1; leave out (or 1) to disable. */
  topP?: number
  /** Integer ≥ 0; leave out (or 0) to disable. */
  topK?: number
  /** Integer 0..2^32-1; with temperature > 0 the same seed gives the same text. */
  seed?: number
  /** Up to 8 strings; generation stops (finishReason 'stop') when one appears. The stop string is not output. */
  stop?: string[]
}

export type FinishReason = 'stop' | 'length' | 'cancelled'

export interface GenerateResult {
  finishReason: FinishReason
  /** Tokens of the formatted prompt (chat template included). */
  promptTokens: number
  /** Tokens the model generated, including an end-of-sequence or stop-string token. */
  outputTokens: number
}

export interface EngineOptions {
  modelPath: string
  /** Parallel sequences in the one context: how many requests decode at once. */
  slots: number
  /** CPU threads for evaluation (getLlama's maxThreads and the context's threads). Required: defaults are very slow on small machines. */
  threads: number
  /**
   * Tokens per sequence.
   * @default 2048
   */
  contextSize?: number
  /**
   * GPU backend to use; `false` forces the CPU (tests and CI).
   * @default 'auto'
   */
  gpu?: 'auto' | false
}

export interface BenchmarkResult {
  prefillTokensPerSecond: number
  decodeTokensPerSecond: number
}
