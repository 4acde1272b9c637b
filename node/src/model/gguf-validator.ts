/**
 * Checks a GGUF file before node-llama-cpp sees it: the structure (via the bounded {@link readGgufHeader}) and the
 * metadata llama.cpp needs. Several metadata mistakes make llama.cpp fail an assertion and abort the whole process
 * instead of returning an error; this catches the known ones with a clear message. Others remain (for example a
 * vocabulary with a duplicate token), which is why untrusted models also get a trial load in a child process.
 */
import { ModelRejectedError, type ModelRejectionReason } from './errors.js'
import { type GgufHeader, type GgufMetadataEntry, readGgufHeader } from './gguf-reader.js'
import { GgufValueType } from './gguf-writer.js'

/** llama.cpp's LLAMA_MAX_LAYERS: `block_count` outside 1..this fails an assertion. */
const LLAMA_MAX_LAYERS = 512

/**
 * Architectures whose every layer has attention heads and a feed-forward network, so that llama.cpp makes tensors
 * from `feed_forward_length` and `attention.head_count` (missing or 0 means a 0-sized dimension, which aborts), and
 * whose norm is RMS norm. Other architectures (Mamba writes head_count 0 on purpose) get only the generic checks.
 */
const ATTENTION_RMS_ARCHITECTURES = new Set(['llama', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'gemma3', 'phi3'])

const INTEGER_TYPES = new Set<number>([
  GgufValueType.UINT8,
  GgufValueType.INT8,
  GgufValueType.UINT16,
  GgufValueType.INT16,
  GgufValueType.UINT32,
  GgufValueType.INT32,
  GgufValueType.UINT64,
  GgufValueType.INT64,
])
const FLOAT_TYPES = new Set<number>([GgufValueType.FLOAT32, GgufValueType.FLOAT64])

/** What the node learned about a model file that passed validation. */
export interface GgufSummary {
  version: number
  architecture: string
  /** Entries in `tokenizer.ggml.tokens`. */
  vocabularySize: number
  tensorCount: number
  fileSizeBytes: number
}

const ADVICE: Partial<Record<ModelRejectionReason, string>> = {
  'not-gguf': "Pass a .gguf model file (convert other formats with llama.cpp's convert_hf_to_gguf.py).",
  truncated: 'The file is incomplete: download or copy it again.',
  malformed: 'The file is damaged or not a GGUF file llama.cpp can read: download it again or re-convert it.',
  'missing-metadata':
    'The model was not converted for llama.cpp correctly: re-convert it with a current llama.cpp or use another GGUF file.',
  'invalid-metadata':
    'The model was not converted for llama.cpp correctly: re-convert it with a current llama.cpp or use another GGUF file.',
}

function missing(key: string, why: string): ModelRejectedError {
  return new ModelRejectedError('missing-metadata', `metadata '${key}' is missing (${why})`)
}

function invalid(key: string, problem: string): ModelRejectedError {
  return new ModelRejectedError('invalid-metadata', `metadata '${key}' ${problem}`)
}

function integerValues(key: string, entry: GgufMetadataEntry, allowArray: boolean): number[] {
  if (entry.kind === 'scalar') {
    if (!INTEGER_TYPES.has(entry.type)) throw invalid(key, 'must be an integer')
    return [Number(entry.value)]
  }
  if (!allowArray) throw invalid(key, 'must be a single integer, not an array')
  if (!INTEGER_TYPES.has(entry.elementType)) throw invalid(key, 'must be an integer or an array of integers')
  if (entry.elements === undefined) throw invalid(key, `is an array of ${entry.length} integers, far more than layers`)
  if (entry.elements.length === 0) throw invalid(key, 'is an empty array')
  return entry.elements.map(Number)
}

/** An integer hyperparameter (or per-layer array) whose values must all lie in min..max. */
function checkIntegers(
  metadata: ReadonlyMap<string, GgufMetadataEntry>,
  key: string,
  options: { required: string | false; min: number; max?: number; allowArray?: boolean },
): number[] | undefined {
  const entry = metadata.get(key)
  if (entry === undefined) {
    if (options.required !== false) throw missing(key, options.required)
    return undefined
  }
  const values = integerValues(key, entry, options.allowArray ?? false)
  for (const value of values) {
    if (value < options.min || (options.max !== undefined && value > options.max)) {
      const range = options.max === undefined ? `at least ${options.min}` : `${options.min} to ${options.max}`
      throw invalid(key, `is ${value}; it must be ${range}`)
    }
  }
  return values
}

function checkEpsilon(metadata: ReadonlyMap<string, GgufMetadataEntry>, key: string, required: string | false): void {
  const entry = metadata.get(key)
  if (entry === undefined) {
    if (required !== false) throw missing(key, required)
    return
  }
  if (entry.kind !== 'scalar' || !FLOAT_TYPES.has(entry.type)) throw invalid(key, 'must be a float')
  const value = entry.value as number
  // ggml's norm kernels assert eps >= 0 (NaN fails too), aborting on the first token.
  if (!Number.isFinite(value) || value < 0) throw invalid(key, `is ${value}; it must be a finite number ≥ 0`)
}

function checkArchitecture(metadata: ReadonlyMap<string, GgufMetadataEntry>): string {
  const entry = metadata.get('general.architecture')
  if (entry === undefined) throw missing('general.architecture', 'llama.cpp cannot tell what kind of model this is')
  if (entry.kind !== 'scalar' || typeof entry.value !== 'string') {
    throw invalid('general.architecture', 'must be a string')
  }
  const architecture = entry.value
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(architecture)) {
    throw invalid('general.architecture', `is ${JSON.stringify(architecture.slice(0, 64))}, not an architecture name`)
  }
  return architecture
}

function checkHyperparameters(metadata: ReadonlyMap<string, GgufMetadataEntry>, architecture: string): void {
  const key = (name: string): string => `${architecture}.${name}`
  const needed = 'llama.cpp needs it for every model'
  checkIntegers(metadata, key('context_length'), { required: needed, min: 0 })
  checkIntegers(metadata, key('embedding_length'), { required: needed, min: 1 })
  checkIntegers(metadata, key('block_count'), { required: needed, min: 1, max: LLAMA_MAX_LAYERS })

  // Mixture of experts: llama.cpp asserts used <= count, and that both are 0 or both are positive.
  const expertCount = checkIntegers(metadata, key('expert_count'), { required: false, min: 0 })?.[0] ?? 0
  const expertsUsed = checkIntegers(metadata, key('expert_used_count'), { required: false, min: 0, allowArray: true })
  const mostUsed = Math.max(0, ...(expertsUsed ?? []))
  if (mostUsed > expertCount) {
    throw invalid(key('expert_used_count'), `is ${mostUsed}, more than ${key('expert_count')} (${expertCount})`)
  }
  if (expertCount > 0 && mostUsed === 0) {
    throw invalid(key('expert_used_count'), `must be at least 1 when ${key('expert_count')} is ${expertCount}`)
  }

  const layered = ATTENTION_RMS_ARCHITECTURES.has(architecture)
  const why = `llama.cpp aborts the process loading a ${architecture} model without it`
  checkIntegers(metadata, key('feed_forward_length'), {
    required: layered && why,
    min: layered ? 1 : 0,
    allowArray: true,
  })
  checkIntegers(metadata, key('attention.head_count'), {
    required: layered && why,
    min: layered ? 1 : 0,
    allowArray: true,
  })
  checkIntegers(metadata, key('attention.head_count_kv'), { required: false, min: layered ? 1 : 0, allowArray: true })
  checkEpsilon(metadata, key('attention.layer_norm_rms_epsilon'), layered && `llama.cpp needs it for ${architecture}`)
  checkEpsilon(metadata, key('attention.layer_norm_epsilon'), false)
}

function checkTokenizer(metadata: ReadonlyMap<string, GgufMetadataEntry>): number {
  const model = metadata.get('tokenizer.ggml.model')
  if (model === undefined) throw missing('tokenizer.ggml.model', 'the model has no tokenizer')
  if (model.kind !== 'scalar' || typeof model.value !== 'string' || model.value.length === 0) {
    throw invalid('tokenizer.ggml.model', 'must be a tokenizer name')
  }
  const tokens = metadata.get('tokenizer.ggml.tokens')
  if (tokens === undefined) throw missing('tokenizer.ggml.tokens', 'the model has no vocabulary')
  if (tokens.kind !== 'array' || tokens.elementType !== GgufValueType.STRING) {
    throw invalid('tokenizer.ggml.tokens', 'must be an array of strings')
  }
  if (tokens.length === 0) throw invalid('tokenizer.ggml.tokens', 'is empty')
  // llama.cpp reads these as raw float / int32 arrays of the vocabulary's length.
  const perToken: [string, number, string][] = [
    ['tokenizer.ggml.scores', GgufValueType.FLOAT32, 'f32'],
    ['tokenizer.ggml.token_type', GgufValueType.INT32, 'i32'],
  ]
  for (const [key, elementType, typeName] of perToken) {
    const entry = metadata.get(key)
    if (entry === undefined) continue
    if (entry.kind !== 'array' || entry.elementType !== elementType)
      throw invalid(key, `must be an array of ${typeName}`)
    if (entry.length !== tokens.length) {
      throw invalid(key, `has ${entry.length} entries but the vocabulary has ${tokens.length} tokens`)
    }
  }
  const merges = metadata.get('tokenizer.ggml.merges')
  if (merges !== undefined && (merges.kind !== 'array' || merges.elementType !== GgufValueType.STRING)) {
    throw invalid('tokenizer.ggml.merges', 'must be an array of strings')
  }
  return tokens.length
}

/** Checks the metadata of a parsed header; throws {@link ModelRejectedError} (message without the path). */
export function checkGgufMetadata(header: GgufHeader): GgufSummary {
  const architecture = checkArchitecture(header.metadata)
  checkHyperparameters(header.metadata, architecture)
  const vocabularySize = checkTokenizer(header.metadata)
  const splitCount = header.metadata.get('split.count')
  if (splitCount?.kind === 'scalar' && Number(splitCount.value) > 1) {
    throw new ModelRejectedError(
      'invalid-metadata',
      `it is part of a model split into ${splitCount.value} files, which the node does not serve; merge the parts into one file with llama.cpp's llama-gguf-split --merge`,
    )
  }
  if (header.tensors.length === 0) throw new ModelRejectedError('malformed', 'it has no tensors')
  return {
    version: header.version,
    architecture,
    vocabularySize,
    tensorCount: header.tensors.length,
    fileSizeBytes: header.fileSizeBytes,
  }
}

/**
 * Validates the GGUF file at `path` without loading it: structure, sizes against the file, tensor data extents
 * and the metadata llama.cpp needs. Safe on hostile files (bounded reads and memory, no native code). Throws
 * {@link ModelRejectedError} whose message names the file, the problem and what to do.
 */
export async function validateGgufFile(
  path: string,
  options: { signal?: AbortSignal | undefined; maxHeaderBytes?: number } = {},
): Promise<GgufSummary> {
  try {
    return checkGgufMetadata(await readGgufHeader(path, options))
  } catch (error) {
    if (!(error instanceof ModelRejectedError)) throw error
    const advice = ADVICE[error.reason]
    throw new ModelRejectedError(
      error.reason,
      `Refusing model file ${path}: ${error.message}.${advice === undefined ? '' : ` ${advice}`}`,
    )
  }
}
