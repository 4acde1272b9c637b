import type { LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp'
import type { BenchmarkResult } from './types.js'

/** Tokens evaluated at once to measure prefill (prompt processing) speed. */
export const BENCHMARK_PREFILL_TOKENS = 256
/** Tokens generated one at a time to measure decode speed. */
export const BENCHMARK_DECODE_TOKENS = 128
/** Tokens decoded before timing starts (the first steps are slower while caches warm up). */
export const BENCHMARK_DECODE_WARMUP_TOKENS = 4
/** Decoding stops early after this long, so slow models still finish the benchmark quickly. */
export const BENCHMARK_DECODE_MAX_DURATION_MS = 3_000
const BENCHMARK_TEXT =
  'The morning is quiet and the kitchen smells of fresh bread. We sit at the table and talk about the day. '

function prefillTokens(model: LlamaModel, count: number): Token[] {
  const pattern = model.tokenize(BENCHMARK_TEXT)
  if (pattern.length === 0) throw new Error('the model tokenizes the benchmark text to nothing')
  return Array.from({ length: count }, (_, index) => pattern[index % pattern.length]!)
}

/**
 * Measures prefill and decode speed on one sequence, which must be empty; it is left empty again.
 * Prefill and decode runs are each limited so the whole benchmark takes about a second on small models.
 */
export async function runBenchmark(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  options: { signal?: AbortSignal } = {},
): Promise<BenchmarkResult> {
  const { signal } = options
  const prefillCount = Math.max(
    1,
    Math.min(BENCHMARK_PREFILL_TOKENS, sequence.contextSize - BENCHMARK_DECODE_TOKENS - 2),
  )
  const tokens = prefillTokens(model, prefillCount)

  signal?.throwIfAborted()
  const prefillStart = performance.now()
  await sequence.evaluateWithoutGeneratingNewTokens(tokens)
  const prefillSeconds = (performance.now() - prefillStart) / 1000
  await sequence.clearHistory()

  signal?.throwIfAborted()
  let decodeStart = 0
  let generated = 0
  let decoded = 0
  const decodeLimit = Math.min(BENCHMARK_DECODE_TOKENS, sequence.contextSize - BENCHMARK_DECODE_WARMUP_TOKENS - 4)
  // Time only one-token steps, after the prompt and a few warm-up tokens.
  for await (const _token of sequence.evaluate(tokens.slice(0, 1), { temperature: 0, yieldEogToken: true })) {
    generated++
    if (generated <= BENCHMARK_DECODE_WARMUP_TOKENS) {
      decodeStart = performance.now()
      if (signal?.aborted) break
      continue
    }
    decoded++
    if (decoded >= decodeLimit || signal?.aborted) break
    if (performance.now() - decodeStart > BENCHMARK_DECODE_MAX_DURATION_MS) break
  }
  const decodeSeconds = (performance.now() - decodeStart) / 1000
  await sequence.clearHistory()
  signal?.throwIfAborted()

  return {
    prefillTokensPerSecond: prefillCount / prefillSeconds,
    decodeTokensPerSecond: decoded / decodeSeconds,
  }
}
