/**
 * `lull-tiny`: a real llama-architecture GGUF model that the node generates offline, byte for byte the
 * same every time. Its one transformer block passes the residual through unchanged (attention output and
 * FFN down-projection are zero), each token's embedding is a one-hot "state" vector, and `output.weight`
 * holds log P(next token | state) from bigram counts over {@link TINY_CORPUS_PARAGRAPHS}. So it samples
 * word-like English from the corpus vocabulary at thousands of tokens per second on one CPU thread.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomically } from './atomic-write-file.js'
import { buildBigramTable } from './bigram-table.js'
import { sha256Bytes, sha256File } from './file-digest.js'
import { encodeGguf, GGUF_ALIGNMENT_BYTES, type GgufTensor, type GgufValue } from './gguf-writer.js'
import { TINY_CORPUS_PARAGRAPHS } from './tiny-corpus.js'
import { BOS_TOKEN_ID, buildTinyVocabulary, EOS_TOKEN_ID, UNK_TOKEN_ID } from './tiny-vocabulary.js'

export const LULL_TINY_MODEL_ID = 'lull-tiny'
export const LULL_TINY_FILE_NAME = `${LULL_TINY_MODEL_ID}.gguf`

const CONTEXT_LENGTH_TOKENS = 4096
const BLOCK_COUNT = 1
/** Attention runs on one small head: its weights are zero, so its size only costs time and memory. */
const HEAD_DIM = 64
const HEAD_COUNT = 1
const FEED_FORWARD_LENGTH = 32
const RMS_NORM_EPSILON = 1e-5
const ROPE_FREQ_BASE = 10_000
/** Embedding length is the state count rounded up to this. */
const EMBEDDING_ROUNDING = 32
/** ggml file type 0: all tensors F32. */
const FILE_TYPE_ALL_F32 = 0

/** A model file on this machine, ready to load. */
export interface ResolvedModel {
  id: string
  path: string
  /** SHA-256 of the file, lowercase hex. */
  sha256: string
  sizeBytes: number
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple
}

function filled(length: number, value: number): Float32Array {
  return new Float32Array(length).fill(value)
}

/** The model's metadata and tensors, before encoding (tests derive malformed variants from them). */
export interface GgufParts {
  metadata: Map<string, GgufValue>
  tensors: GgufTensor[]
}

/** Builds the model's metadata and tensors. Pure and deterministic. */
export function buildLullTinyParts(): GgufParts {
  const vocabulary = buildTinyVocabulary(TINY_CORPUS_PARAGRAPHS)
  const table = buildBigramTable(vocabulary)
  const vocabSize = vocabulary.tokens.length
  const embeddingLength = roundUp(table.stateCount, EMBEDDING_ROUNDING)
  const attentionWidth = HEAD_DIM * HEAD_COUNT

  // A one-hot embedding of height sqrt(E) has RMS 1, so the model's epsilon barely matters. RMS norm
  // gives every one-hot vector height sqrt(E); output_norm scales that back to 1 (and undoes epsilon).
  const embeddingScale = Math.sqrt(embeddingLength)
  const outputNormScale = Math.sqrt(1 + RMS_NORM_EPSILON) / embeddingScale
  const tokenEmbedding = new Float32Array(embeddingLength * vocabSize)
  for (let token = 0; token < vocabSize; token++) {
    tokenEmbedding[token * embeddingLength + table.stateOfToken[token]!] = embeddingScale
  }
  // output.weight row `token` holds that token's logit for each state (column), so logits = row · one-hot.
  const output = new Float32Array(embeddingLength * vocabSize)
  for (let state = 0; state < table.stateCount; state++) {
    for (let token = 0; token < vocabSize; token++) {
      output[token * embeddingLength + state] = table.logits[state * vocabSize + token]!
    }
  }

  const tensors: GgufTensor[] = [
    { name: 'token_embd.weight', dims: [embeddingLength, vocabSize], data: tokenEmbedding },
    { name: 'output_norm.weight', dims: [embeddingLength], data: filled(embeddingLength, outputNormScale) },
    { name: 'output.weight', dims: [embeddingLength, vocabSize], data: output },
  ]
  for (let block = 0; block < BLOCK_COUNT; block++) {
    const prefix = `blk.${block}`
    tensors.push(
      { name: `${prefix}.attn_norm.weight`, dims: [embeddingLength], data: filled(embeddingLength, 1) },
      {
        name: `${prefix}.attn_q.weight`,
        dims: [embeddingLength, attentionWidth],
        data: filled(embeddingLength * attentionWidth, 0),
      },
      {
        name: `${prefix}.attn_k.weight`,
        dims: [embeddingLength, attentionWidth],
        data: filled(embeddingLength * attentionWidth, 0),
      },
      {
        name: `${prefix}.attn_v.weight`,
        dims: [embeddingLength, attentionWidth],
        data: filled(embeddingLength * attentionWidth, 0),
      },
      {
        name: `${prefix}.attn_output.weight`,
        dims: [attentionWidth, embeddingLength],
        data: filled(attentionWidth * embeddingLength, 0),
      },
      { name: `${prefix}.ffn_norm.weight`, dims: [embeddingLength], data: filled(embeddingLength, 1) },
      {
        name: `${prefix}.ffn_gate.weight`,
        dims: [embeddingLength, FEED_FORWARD_LENGTH],
        data: filled(embeddingLength * FEED_FORWARD_LENGTH, 0),
      },
      {
        name: `${prefix}.ffn_up.weight`,
        dims: [embeddingLength, FEED_FORWARD_LENGTH],
        data: filled(embeddingLength * FEED_FORWARD_LENGTH, 0),
      },
      {
        name: `${prefix}.ffn_down.weight`,
        dims: [FEED_FORWARD_LENGTH, embeddingLength],
        data: filled(FEED_FORWARD_LENGTH * embeddingLength, 0),
      },
    )
  }

  const metadata = new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: LULL_TINY_MODEL_ID }],
    ['general.alignment', { type: 'u32', value: GGUF_ALIGNMENT_BYTES }],
    ['general.file_type', { type: 'u32', value: FILE_TYPE_ALL_F32 }],
    ['llama.vocab_size', { type: 'u32', value: vocabSize }],
    ['llama.context_length', { type: 'u32', value: CONTEXT_LENGTH_TOKENS }],
    ['llama.embedding_length', { type: 'u32', value: embeddingLength }],
    ['llama.block_count', { type: 'u32', value: BLOCK_COUNT }],
    ['llama.feed_forward_length', { type: 'u32', value: FEED_FORWARD_LENGTH }],
    ['llama.attention.head_count', { type: 'u32', value: HEAD_COUNT }],
    ['llama.attention.head_count_kv', { type: 'u32', value: HEAD_COUNT }],
    ['llama.attention.key_length', { type: 'u32', value: HEAD_DIM }],
    ['llama.attention.value_length', { type: 'u32', value: HEAD_DIM }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: RMS_NORM_EPSILON }],
    ['llama.rope.dimension_count', { type: 'u32', value: HEAD_DIM }],
    ['llama.rope.freq_base', { type: 'f32', value: ROPE_FREQ_BASE }],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: vocabulary.tokens }],
    ['tokenizer.ggml.scores', { type: 'f32[]', value: vocabulary.scores }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: vocabulary.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: BOS_TOKEN_ID }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: EOS_TOKEN_ID }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: UNK_TOKEN_ID }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
    ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: true }],
  ])
  return { metadata, tensors }
}

/** Builds the model file in memory. Pure and deterministic. */
export function buildLullTinyGguf(): Buffer {
  const { metadata, tensors } = buildLullTinyParts()
  return encodeGguf(metadata, tensors)
}

/** Digest of a fresh build, remembered so a later call with the file in place builds nothing. */
let knownBuildSha256: string | undefined

async function existingDigest(path: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  try {
    return await sha256File(path, { signal })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Generates `<dataDir>/models/lull-tiny.gguf` if absent or if its digest differs from a fresh build's;
 * returns it. Writes atomically (tmp file + rename) so a crash never leaves a half file.
 */
export async function ensureLullTinyModel(
  dataDir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ResolvedModel> {
  const { signal } = options
  signal?.throwIfAborted()
  const path = join(dataDir, 'models', LULL_TINY_FILE_NAME)
  const current = await existingDigest(path, signal)
  if (current === undefined || current !== knownBuildSha256) {
    const bytes = buildLullTinyGguf()
    knownBuildSha256 = sha256Bytes(bytes)
    if (current !== knownBuildSha256) await writeFileAtomically(path, bytes, { signal })
  }
  const { size } = await stat(path)
  return { id: LULL_TINY_MODEL_ID, path, sha256: knownBuildSha256, sizeBytes: size }
}
