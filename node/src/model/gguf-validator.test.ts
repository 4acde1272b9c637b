import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama } from 'node-llama-cpp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ModelRejectedError } from './errors.js'
import { ggmlTypeLayout, parseGgufHeader, readGgufHeader } from './gguf-reader.js'
import { validateGgufFile } from './gguf-validator.js'
import { encodeGguf, type GgufValue } from './gguf-writer.js'
import { buildLullTinyParts, ensureLullTinyModel, type GgufParts } from './lull-tiny.js'

let dir: string
let tinyPath: string
let parts: GgufParts
let tinyBytes: Buffer

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lull-gguf-validator-'))
  tinyPath = (await ensureLullTinyModel(dir)).path
  parts = buildLullTinyParts()
  tinyBytes = encodeGguf(parts.metadata, parts.tensors)
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** lull-tiny with its metadata edited. */
function withMetadata(edit: (metadata: Map<string, GgufValue>) => void): Buffer {
  const metadata = new Map(parts.metadata)
  edit(metadata)
  return encodeGguf(metadata, parts.tensors)
}

let fileCount = 0
async function fileWith(bytes: Uint8Array): Promise<string> {
  const path = join(dir, `variant-${fileCount++}.gguf`)
  await writeFile(path, bytes)
  return path
}

/** Validates `bytes` as a file; returns the rejection (fails the test if there is none). */
async function rejection(bytes: Uint8Array): Promise<ModelRejectedError> {
  const path = await fileWith(bytes)
  const error = await validateGgufFile(path).then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ModelRejectedError)
  expect((error as Error).message).toContain(path)
  return error as ModelRejectedError
}

/** A GGUF header with the given counts, followed by `rest`. */
function header(tensors: bigint, entries: bigint, rest: Uint8Array = new Uint8Array()): Buffer {
  const head = Buffer.alloc(24)
  head.write('GGUF', 'latin1')
  head.writeUInt32LE(3, 4)
  head.writeBigUInt64LE(tensors, 8)
  head.writeBigUInt64LE(entries, 16)
  return Buffer.concat([head, rest])
}

function u64(value: bigint): Buffer {
  const bytes = Buffer.alloc(8)
  bytes.writeBigUInt64LE(value)
  return bytes
}

function u32(value: number): Buffer {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32LE(value)
  return bytes
}

describe('validateGgufFile', () => {
  it('accepts lull-tiny', async () => {
    const summary = await validateGgufFile(tinyPath)
    expect(summary).toMatchObject({ version: 3, architecture: 'llama', tensorCount: parts.tensors.length })
    expect(summary.vocabularySize).toBeGreaterThan(1000)
  })

  it('refuses a llama model without the hyperparameters llama.cpp aborts on', async () => {
    for (const key of ['llama.feed_forward_length', 'llama.attention.head_count']) {
      const error = await rejection(withMetadata((metadata) => metadata.delete(key)))
      expect(error.reason).toBe('missing-metadata')
      expect(error.message).toContain(`'${key}' is missing`)
      expect(error.message).toMatch(/re-convert/)
    }
    for (const key of ['llama.embedding_length', 'llama.block_count', 'llama.attention.layer_norm_rms_epsilon']) {
      expect((await rejection(withMetadata((metadata) => metadata.delete(key)))).reason).toBe('missing-metadata')
    }
    const zeroHeads = await rejection(
      withMetadata((metadata) => metadata.set('llama.attention.head_count', { type: 'u32', value: 0 })),
    )
    expect(zeroHeads.reason).toBe('invalid-metadata')
    const nanEpsilon = withMetadata((metadata) =>
      metadata.set('llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: Number.NaN }),
    )
    expect((await rejection(nanEpsilon)).message).toMatch(/is NaN/)
    const stringWidth = withMetadata((metadata) =>
      metadata.set('llama.feed_forward_length', { type: 'string', value: '32' }),
    )
    expect((await rejection(stringWidth)).message).toMatch(/must be an integer/)
  })

  it('refuses a model without an architecture or a tokenizer', async () => {
    expect((await rejection(withMetadata((metadata) => metadata.delete('general.architecture')))).message).toMatch(
      /general\.architecture' is missing/,
    )
    expect((await rejection(withMetadata((metadata) => metadata.delete('tokenizer.ggml.model')))).reason).toBe(
      'missing-metadata',
    )
    expect((await rejection(withMetadata((metadata) => metadata.delete('tokenizer.ggml.tokens')))).reason).toBe(
      'missing-metadata',
    )
    const shortScores = withMetadata((metadata) =>
      metadata.set('tokenizer.ggml.scores', { type: 'f32[]', value: [0, 1] }),
    )
    expect((await rejection(shortScores)).message).toMatch(/has 2 entries but the vocabulary has/)
    const inconsistentExperts = withMetadata((metadata) =>
      metadata.set('llama.expert_used_count', { type: 'u32', value: 2 }),
    )
    expect((await rejection(inconsistentExperts)).message).toMatch(/expert_used_count' is 2, more than/)
    const splitPart = withMetadata((metadata) => metadata.set('split.count', { type: 'u32', value: 3 }))
    expect((await rejection(splitPart)).message).toMatch(/split into 3 files.*llama-gguf-split --merge/)
  })

  it('refuses a truncated file, whichever part is missing', async () => {
    const cutData = await rejection(tinyBytes.subarray(0, tinyBytes.length - 1000))
    expect(cutData.reason).toBe('truncated')
    expect(cutData.message).toMatch(
      /tensor 'blk\.0\.ffn_down\.weight' .* ends past the end of the file.*download or copy it again/,
    )
    const cutHeader = await rejection(tinyBytes.subarray(0, 5000))
    expect(cutHeader.reason).toBe('truncated')
    expect(cutHeader.message).toMatch(/the file ends \(at byte 5000\) in the middle of/)
  })

  it('refuses bad magic, unsupported versions and big-endian files', async () => {
    const notGguf = Buffer.from(tinyBytes)
    notGguf.write('GGML', 0, 'latin1')
    expect((await rejection(notGguf)).reason).toBe('not-gguf')
    expect((await rejection(Buffer.from('GG'))).reason).toBe('not-gguf')
    const version1 = Buffer.from(tinyBytes)
    version1.writeUInt32LE(1, 4)
    expect((await rejection(version1)).message).toMatch(/version 1, which llama\.cpp no longer reads/)
    const bigEndian = Buffer.from(tinyBytes)
    bigEndian.writeUInt32BE(3, 4)
    expect((await rejection(bigEndian)).message).toMatch(/big-endian/)
  })

  it('refuses absurd counts and lengths at once, without reading or allocating them', async () => {
    // Each of these makes node-llama-cpp's readGgufFileInfo abort the process or exhaust the heap.
    const hostile: [string, Buffer][] = [
      ['metadata count', header(0n, 1n << 62n)],
      ['tensor count', header(1n << 40n, 0n)],
      ['string length', header(0n, 1n, Buffer.concat([u64(3_000_000_000n), Buffer.from('abc')]))],
      [
        'array length',
        header(0n, 1n, Buffer.concat([u64(3n), Buffer.from('a.b'), u32(9), u32(0), u64(1n << 60n), Buffer.alloc(64)])),
      ],
      [
        'array of strings',
        header(0n, 1n, Buffer.concat([u64(3n), Buffer.from('a.b'), u32(9), u32(8), u64(1n << 40n), Buffer.alloc(64)])),
      ],
      ['nested array', header(0n, 1n, Buffer.concat([u64(3n), Buffer.from('a.b'), u32(9), u32(9), u64(1n)]))],
      ['value type', header(0n, 1n, Buffer.concat([u64(3n), Buffer.from('a.b'), u32(77), Buffer.alloc(16)]))],
    ]
    for (const [what, bytes] of hostile) {
      const started = performance.now()
      const error = await rejection(bytes)
      expect(error.reason, what).toBe('malformed')
      expect(performance.now() - started, what).toBeLessThan(1000)
    }
  })

  it('stops reading at the header limit', async () => {
    const error = await readGgufHeader(tinyPath, { maxHeaderBytes: 4096 }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ModelRejectedError)
    expect((error as ModelRejectedError).message).toMatch(/more than 4096 bytes/)
  })

  it('checks tensor types, offsets and duplicates', () => {
    const parsed = parseGgufHeader(tinyBytes)
    expect(parsed.dataOffset % parsed.alignment).toBe(0)
    expect(parsed.tensors.map((tensor) => tensor.name)).toEqual(parts.tensors.map((tensor) => tensor.name))
    // Rewrite fields of the first tensor's info in place: it sits right after the metadata.
    const first = parsed.tensors[0]!
    const infoStart = tinyBytes.lastIndexOf(
      Buffer.concat([u64(BigInt(first.name.length)), Buffer.from(first.name)]),
      parsed.dataOffset,
    )
    expect(infoStart).toBeGreaterThan(0)
    const typeAt = infoStart + 8 + first.name.length + 4 + 8 * first.dims.length
    const unknownType = Buffer.from(tinyBytes)
    unknownType.writeUInt32LE(200, typeAt)
    expect(() => parseGgufHeader(unknownType)).toThrow(/ggml type 200, which this node's llama\.cpp does not know/)
    const misaligned = Buffer.from(tinyBytes)
    misaligned.writeBigUInt64LE(4n, typeAt + 4)
    expect(() => parseGgufHeader(misaligned)).toThrow(/not a multiple of 32/)
    expect(() => parseGgufHeader(encodeGguf(parts.metadata, [...parts.tensors, parts.tensors[1]!]))).toThrow(
      /appears twice/,
    )
  })

  it('knows the same ggml type sizes as the bundled llama.cpp', async () => {
    const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1 })
    try {
      const bindings = (
        llama as unknown as {
          _bindings: {
            getTypeSizeForGgmlType(type: number): number | undefined
            getBlockSizeForGgmlType(type: number): number | undefined
          }
        }
      )._bindings
      for (let type = 0; type < 64; type++) {
        const typeSize = bindings.getTypeSizeForGgmlType(type) ?? 0
        const layout = ggmlTypeLayout(type)
        if (typeSize === 0) expect(layout, `type ${type}`).toBeUndefined()
        else
          expect(layout, `type ${type}`).toMatchObject({ typeSize, blockSize: bindings.getBlockSizeForGgmlType(type) })
      }
    } finally {
      await llama.dispose()
    }
  })
})
