/**
 * Before a node loads a model: will the weights and a context of `slots` sequences fit in the memory this machine
 * has free? node-llama-cpp's GGUF insights estimate both from the file's metadata (architecture, layer sizes, tensor
 * types) without loading it. A model that does not fit is refused with what would: fewer slots, a smaller context,
 * or a smaller model file (a lower quantisation or fewer parameters).
 */
import { GgufInsights, getLlama, readGgufFileInfo } from 'node-llama-cpp'
import { availableMemoryBytes } from '../hardware.js'
import { InsufficientMemoryError, type MemoryFitSuggestion } from './errors.js'
import { type GgufHeader, readGgufHeader } from './gguf-reader.js'

/** Kept free on top of the estimate: llama.cpp's own buffers, the node's JavaScript heap, the OS. */
export const MEMORY_HEADROOM_BYTES = 256 * 1024 ** 2
/** The smallest context (tokens per slot) worth suggesting. */
export const MIN_SUGGESTED_CONTEXT_TOKENS = 256
const GIB = 1024 ** 3
const MIB = 1024 ** 2

export interface MemoryFitOptions {
  /** Parallel sequences the engine will create. */
  slots: number
  /** Tokens per sequence. */
  contextSize: number
  /** Whether a GPU may hold part of the model (its free VRAM then counts too). @default 'auto' */
  gpu?: 'auto' | false
  /** Free RAM in bytes. @default availableMemoryBytes() (MemAvailable on Linux, free + reclaimable on macOS) */
  freeRamBytes?: number
  /**
   * Free VRAM in bytes. @default read from node-llama-cpp when `gpu` is not false, and only when RAM alone is not
   * enough (reading it starts a GPU backend, which takes a moment)
   */
  freeVramBytes?: number
  /** @default MEMORY_HEADROOM_BYTES */
  headroomBytes?: number
  signal?: AbortSignal | undefined
}

/** Compute buffers and other runtime allocations allowed for in the quick upper bound. */
const UPPER_BOUND_RUNTIME_BYTES = GIB
/** Safety factor on the quick bound's context part (wider K/V heads than the embedding, SWA, recurrent state). */
const UPPER_BOUND_CONTEXT_FACTOR = 2
const F32_BYTES = 4
/** Tokens llama.cpp evaluates at once (the logits buffer scales with it). */
const BATCH_TOKENS = 512

export interface MemoryEstimate {
  /** `upper-bound`: a quick, generous bound from the GGUF header showed the model fits; `insights`: node-llama-cpp's estimate. */
  method: 'upper-bound' | 'insights'
  /** The weights. */
  modelBytes: number
  /** The context: KV cache for every slot plus compute buffers. */
  contextBytes: number
  /** modelBytes + contextBytes + headroom. */
  requiredBytes: number
  /** Free RAM, plus free VRAM when it was read. */
  availableBytes: number
}

export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`
  return `${Math.max(0, bytes / MIB).toFixed(bytes < 10 * MIB ? 1 : 0)} MiB`
}

/** Estimates memory for a model file with `slots` sequences of `contextSize` tokens, all on the CPU. */
export async function estimateModelMemory(
  path: string,
  options: { slots: number; contextSize: number; signal?: AbortSignal | undefined },
): Promise<{ modelBytes: number; contextBytes: (slots: number, contextSize: number) => number }> {
  const info = await readGgufFileInfo(path, options.signal === undefined ? {} : { signal: options.signal })
  const insights = await GgufInsights.from(info)
  const modelBytes = insights.estimateModelResourceRequirements({ gpuLayers: 0 }).cpuRam
  const contextBytes = (slots: number, contextSize: number): number =>
    insights.estimateContextResourceRequirements({ contextSize, modelGpuLayers: 0, sequences: slots }).cpuRam
  return { modelBytes, contextBytes }
}

async function readFreeVram(): Promise<number> {
  const llama = await getLlama({ gpu: 'auto', build: 'never' })
  try {
    return llama.gpu === false ? 0 : (await llama.getVramState()).free
  } finally {
    await llama.dispose()
  }
}

function metadataNumber(header: GgufHeader, key: string): number | undefined {
  const entry = header.metadata.get(key)
  if (entry?.kind !== 'scalar') return undefined
  const value = Number(entry.value)
  return Number.isFinite(value) && value > 0 ? value : undefined
}

/**
 * A quick, generous upper bound of what the model and its context need, from the project's bounded GGUF reader (a few
 * milliseconds, where node-llama-cpp's insights take a second to start their native helper): the whole file, an f32
 * KV cache as wide as the widest of embedding and K/V heads in every layer, times a safety factor, a logits buffer,
 * and a gigabyte of compute buffers. Undefined when the header lacks what the bound needs.
 */
export async function upperBoundMemory(
  path: string,
  options: { slots: number; contextSize: number; signal?: AbortSignal | undefined },
): Promise<{ modelBytes: number; contextBytes: number } | undefined> {
  const header = await readGgufHeader(path, { signal: options.signal })
  const architecture = header.metadata.get('general.architecture')
  if (architecture?.kind !== 'scalar' || typeof architecture.value !== 'string') return undefined
  const arch = architecture.value
  const blocks = metadataNumber(header, `${arch}.block_count`)
  const embedding = metadataNumber(header, `${arch}.embedding_length`)
  if (blocks === undefined || embedding === undefined) return undefined
  const headsKv =
    metadataNumber(header, `${arch}.attention.head_count_kv`) ??
    metadataNumber(header, `${arch}.attention.head_count`) ??
    1
  const keyWidth = (metadataNumber(header, `${arch}.attention.key_length`) ?? 0) * headsKv
  const valueWidth = (metadataNumber(header, `${arch}.attention.value_length`) ?? 0) * headsKv
  const width = Math.max(embedding, keyWidth, valueWidth)
  const tokens = header.metadata.get('tokenizer.ggml.tokens')
  const vocabulary = tokens?.kind === 'array' ? tokens.length : 0
  const kvBytes = 2 * blocks * width * options.contextSize * options.slots * F32_BYTES
  const logitsBytes = vocabulary * Math.min(BATCH_TOKENS, options.contextSize) * F32_BYTES
  return {
    modelBytes: header.fileSizeBytes,
    contextBytes: UPPER_BOUND_CONTEXT_FACTOR * (kvBytes + logitsBytes) + UPPER_BOUND_RUNTIME_BYTES,
  }
}

/**
 * Checks that the model at `path` fits with `slots` × `contextSize` in free memory; returns the estimate, or throws
 * {@link InsufficientMemoryError} saying what would fit.
 */
export async function checkModelFitsInMemory(path: string, options: MemoryFitOptions): Promise<MemoryEstimate> {
  const { slots, contextSize } = options
  const headroom = options.headroomBytes ?? MEMORY_HEADROOM_BYTES
  const freeRam = options.freeRamBytes ?? (await availableMemoryBytes())
  // Most models fit with room to spare: a quick bound from the header says so without starting node-llama-cpp.
  const bound = await upperBoundMemory(path, { slots, contextSize, signal: options.signal })
  if (bound !== undefined && bound.modelBytes + bound.contextBytes + headroom <= freeRam) {
    return {
      method: 'upper-bound',
      ...bound,
      requiredBytes: bound.modelBytes + bound.contextBytes + headroom,
      availableBytes: freeRam,
    }
  }
  const estimate = await estimateModelMemory(path, { slots, contextSize, signal: options.signal })
  const need = (s: number, c: number): number => estimate.modelBytes + estimate.contextBytes(s, c) + headroom
  const requiredBytes = need(slots, contextSize)
  let availableBytes = freeRam
  if (requiredBytes > availableBytes && (options.gpu ?? 'auto') !== false) {
    availableBytes += options.freeVramBytes ?? (await readFreeVram())
  }
  const result: MemoryEstimate = {
    method: 'insights',
    modelBytes: estimate.modelBytes,
    contextBytes: estimate.contextBytes(slots, contextSize),
    requiredBytes,
    availableBytes,
  }
  if (requiredBytes <= availableBytes) return result

  const suggestion: MemoryFitSuggestion = {
    modelBytes: Math.max(0, availableBytes - estimate.contextBytes(1, MIN_SUGGESTED_CONTEXT_TOKENS) - headroom),
  }
  for (let fewer = slots - 1; fewer >= 1; fewer--) {
    if (need(fewer, contextSize) <= availableBytes) {
      suggestion.slots = fewer
      break
    }
  }
  for (
    let smaller = 2 ** Math.floor(Math.log2(contextSize - 1));
    smaller >= MIN_SUGGESTED_CONTEXT_TOKENS;
    smaller /= 2
  ) {
    if (smaller < contextSize && need(slots, smaller) <= availableBytes) {
      suggestion.contextSize = smaller
      break
    }
  }
  const alternatives: string[] = []
  if (suggestion.slots !== undefined) alternatives.push(`Fewer slots would fit: --slots ${suggestion.slots}.`)
  if (suggestion.contextSize !== undefined) {
    alternatives.push(`A smaller context would fit: ${suggestion.contextSize} tokens per slot.`)
  }
  alternatives.push(
    suggestion.modelBytes > 0
      ? `${alternatives.length > 0 ? 'Otherwise use' : 'Use'} a smaller model file: one of at most ${formatBytes(suggestion.modelBytes)} fits (a lower quantisation such as Q4_K_M, or fewer parameters).`
      : 'Not even the smallest context fits beside any model: free some memory or use a machine with more.',
  )
  throw new InsufficientMemoryError(
    requiredBytes,
    availableBytes,
    suggestion,
    `The model needs about ${formatBytes(requiredBytes)} (${formatBytes(result.modelBytes)} weights + ${formatBytes(result.contextBytes)} for ${slots} slot${slots === 1 ? '' : 's'} of ${contextSize} tokens + ${formatBytes(headroom)} headroom), but only ${formatBytes(availableBytes)} is free. ${alternatives.join(' ')}`,
  )
}
