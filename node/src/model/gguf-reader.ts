/**
 * A bounded GGUF header reader for files the node has not vetted yet. It reads the metadata and the tensor table
 * and nothing else, never trusts a count or a length before checking it against the bytes the file actually has,
 * keeps only small values in memory, and stops at {@link DEFAULT_MAX_HEADER_BYTES}.
 *
 * Why not node-llama-cpp's `readGgufFileInfo`: on a hostile file it can take the process down. A string length of
 * 3e9 in a 41-byte file makes it call `fs.read` with a length beyond int32, which fails a native assertion in Node
 * (abort); an array or metadata count of 2^60 makes it read zeros past the end of the file until the heap runs out.
 * `LlamaModel` loading calls it too, so a file must pass this reader before node-llama-cpp sees it in the node.
 */
import { open } from 'node:fs/promises'
import { ModelRejectedError } from './errors.js'
import { GGUF_ALIGNMENT_BYTES, GGUF_MAGIC, GgufValueType } from './gguf-writer.js'

/** Metadata plus tensor table larger than this is refused (real models need a few MiB, mostly the vocabulary). */
export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024 * 1024
/** More metadata entries than this is refused (real models have fewer than a hundred). */
export const MAX_METADATA_ENTRIES = 65_536
/** More tensors than this is refused (large mixture-of-experts models have a few thousand). */
export const MAX_TENSORS = 262_144
/** Longest metadata key accepted. */
const MAX_KEY_BYTES = 4_096
/** ggml's GGML_MAX_DIMS. */
const GGML_MAX_DIMS = 4
/** ggml's GGML_MAX_NAME: tensor names must be shorter. */
const GGML_MAX_NAME = 64
/** Numeric arrays up to this length keep their elements (per-layer hyperparameters); longer ones only a length. */
const MAX_KEPT_ARRAY_ELEMENTS = 4_096
/** The first read; grown by doubling while the header needs more. */
const INITIAL_READ_BYTES = 1024 * 1024

/** ggml tensor types this node's llama.cpp knows: [name, bytes per block, elements per block] by type id. */
const GGML_TYPES: ReadonlyMap<number, readonly [name: string, typeSize: number, blockSize: number]> = new Map([
  [0, ['F32', 4, 1]],
  [1, ['F16', 2, 1]],
  [2, ['Q4_0', 18, 32]],
  [3, ['Q4_1', 20, 32]],
  [6, ['Q5_0', 22, 32]],
  [7, ['Q5_1', 24, 32]],
  [8, ['Q8_0', 34, 32]],
  [9, ['Q8_1', 36, 32]],
  [10, ['Q2_K', 84, 256]],
  [11, ['Q3_K', 110, 256]],
  [12, ['Q4_K', 144, 256]],
  [13, ['Q5_K', 176, 256]],
  [14, ['Q6_K', 210, 256]],
  [15, ['Q8_K', 292, 256]],
  [16, ['IQ2_XXS', 66, 256]],
  [17, ['IQ2_XS', 74, 256]],
  [18, ['IQ3_XXS', 98, 256]],
  [19, ['IQ1_S', 50, 256]],
  [20, ['IQ4_NL', 18, 32]],
  [21, ['IQ3_S', 110, 256]],
  [22, ['IQ2_S', 82, 256]],
  [23, ['IQ4_XS', 136, 256]],
  [24, ['I8', 1, 1]],
  [25, ['I16', 2, 1]],
  [26, ['I32', 4, 1]],
  [27, ['I64', 8, 1]],
  [28, ['F64', 8, 1]],
  [29, ['IQ1_M', 56, 256]],
  [30, ['BF16', 2, 1]],
  [34, ['TQ1_0', 54, 256]],
  [35, ['TQ2_0', 66, 256]],
  [39, ['MXFP4', 17, 32]],
  [40, ['NVFP4', 36, 64]],
  [41, ['Q1_0', 18, 128]],
  [42, ['Q2_0', 18, 64]],
])

/** Type ids of ggml tensor types llama.cpp has removed (their layouts moved into runtime repacking). */
const REMOVED_GGML_TYPES = new Set([4, 5, 31, 32, 33, 36, 37, 38])

/** Bytes per ggml tensor type and block, as the table above has them (for tests that compare with ggml). */
export function ggmlTypeLayout(type: number): { name: string; typeSize: number; blockSize: number } | undefined {
  const layout = GGML_TYPES.get(type)
  return layout && { name: layout[0], typeSize: layout[1], blockSize: layout[2] }
}

const FIXED_VALUE_SIZES: ReadonlyMap<number, number> = new Map([
  [GgufValueType.UINT8, 1],
  [GgufValueType.INT8, 1],
  [GgufValueType.UINT16, 2],
  [GgufValueType.INT16, 2],
  [GgufValueType.UINT32, 4],
  [GgufValueType.INT32, 4],
  [GgufValueType.FLOAT32, 4],
  [GgufValueType.BOOL, 1],
  [GgufValueType.UINT64, 8],
  [GgufValueType.INT64, 8],
  [GgufValueType.FLOAT64, 8],
])
/** Smallest encoding of a string: its u64 length. */
const MIN_STRING_BYTES = 8

export type GgufScalar = number | bigint | boolean | string

/** One metadata value. Arrays keep their elements only when numeric and short. */
export type GgufMetadataEntry =
  | { kind: 'scalar'; type: number; value: GgufScalar }
  | { kind: 'array'; elementType: number; length: number; elements: readonly (number | bigint | boolean)[] | undefined }

export interface GgufTensorInfo {
  name: string
  /** Dimensions in ggml order. */
  dims: readonly number[]
  /** ggml type id and name. */
  type: number
  typeName: string
  /** Offset from the start of the data section. */
  offset: number
  sizeBytes: number
}

export interface GgufHeader {
  version: number
  fileSizeBytes: number
  metadata: ReadonlyMap<string, GgufMetadataEntry>
  tensors: readonly GgufTensorInfo[]
  alignment: number
  /** File offset of the data section: the end of the tensor table rounded up to the alignment. */
  dataOffset: number
}

/** The header continues past the bytes read so far (but not past the end of the file). */
class NeedMoreBytes {
  constructor(readonly end: number) {}
}

function malformed(message: string): ModelRejectedError {
  return new ModelRejectedError('malformed', message)
}

function truncated(message: string): ModelRejectedError {
  return new ModelRejectedError('truncated', message)
}

/** Reads little-endian GGUF values from a prefix of a file of known size. */
class Cursor {
  position = 0

  constructor(
    private readonly bytes: Buffer,
    private readonly fileSize: number,
  ) {}

  get remainingInFile(): number {
    return this.fileSize - this.position
  }

  private take(length: number, what: string): number {
    const start = this.position
    const end = start + length
    if (end > this.fileSize) {
      throw truncated(`the file ends (at byte ${this.fileSize}) in the middle of ${what}`)
    }
    if (end > this.bytes.length) throw new NeedMoreBytes(end)
    this.position = end
    return start
  }

  u8(what: string): number {
    return this.bytes.readUInt8(this.take(1, what))
  }

  u32(what: string): number {
    return this.bytes.readUInt32LE(this.take(4, what))
  }

  u64(what: string): bigint {
    return this.bytes.readBigUInt64LE(this.take(8, what))
  }

  skip(length: number, what: string): void {
    this.take(length, what)
  }

  /** A u64 that must fit in the rest of the file, as a number. */
  length(what: string, elementBytes: number): number {
    const value = this.u64(`the length of ${what}`)
    const claimed = value * BigInt(elementBytes)
    if (claimed > BigInt(this.remainingInFile)) {
      // A plausible length that runs off the end means a cut file; an absurd one means a corrupt (or hostile) one.
      if (claimed <= BigInt(DEFAULT_MAX_HEADER_BYTES)) {
        throw truncated(`the file ends (at byte ${this.fileSize}) in the middle of ${what}`)
      }
      throw malformed(
        `${what} claims ${value} ${elementBytes === 1 ? 'bytes' : 'elements'}, more than the ${this.remainingInFile} bytes left in the file`,
      )
    }
    return Number(value)
  }

  string(what: string, maxBytes?: number): string {
    const length = this.length(what, 1)
    if (maxBytes !== undefined && length > maxBytes)
      throw malformed(`${what} is ${length} bytes long (at most ${maxBytes})`)
    const start = this.take(length, what)
    return this.bytes.toString('utf8', start, start + length)
  }

  /** Reads a fixed-size scalar of a GGUF value type. */
  fixed(type: number, what: string): number | bigint | boolean {
    const size = FIXED_VALUE_SIZES.get(type)!
    const at = this.take(size, what)
    switch (type) {
      case GgufValueType.UINT8:
        return this.bytes.readUInt8(at)
      case GgufValueType.INT8:
        return this.bytes.readInt8(at)
      case GgufValueType.UINT16:
        return this.bytes.readUInt16LE(at)
      case GgufValueType.INT16:
        return this.bytes.readInt16LE(at)
      case GgufValueType.UINT32:
        return this.bytes.readUInt32LE(at)
      case GgufValueType.INT32:
        return this.bytes.readInt32LE(at)
      case GgufValueType.FLOAT32:
        return this.bytes.readFloatLE(at)
      case GgufValueType.BOOL:
        return this.bytes.readUInt8(at) !== 0
      case GgufValueType.UINT64:
        return narrow(this.bytes.readBigUInt64LE(at))
      case GgufValueType.INT64:
        return narrow(this.bytes.readBigInt64LE(at))
      default:
        return this.bytes.readDoubleLE(at)
    }
  }
}

/** 64-bit integers as numbers when exact, else as bigints. */
function narrow(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value
}

function readValue(cursor: Cursor, type: number, what: string): GgufMetadataEntry {
  if (type === GgufValueType.STRING) return { kind: 'scalar', type, value: cursor.string(what) }
  if (FIXED_VALUE_SIZES.has(type)) return { kind: 'scalar', type, value: cursor.fixed(type, what) }
  if (type !== GgufValueType.ARRAY) throw malformed(`${what} has unknown value type ${type}`)

  const elementType = cursor.u32(`the element type of ${what}`)
  if (elementType === GgufValueType.ARRAY) throw malformed(`${what} is an array of arrays, which GGUF does not allow`)
  const elementSize = elementType === GgufValueType.STRING ? MIN_STRING_BYTES : FIXED_VALUE_SIZES.get(elementType)
  if (elementSize === undefined) throw malformed(`${what} is an array of unknown value type ${elementType}`)
  const length = cursor.length(what, elementSize)
  if (elementType === GgufValueType.STRING) {
    for (let i = 0; i < length; i++) cursor.skip(cursor.length(`${what}[${i}]`, 1), `${what}[${i}]`)
    return { kind: 'array', elementType, length, elements: undefined }
  }
  if (length > MAX_KEPT_ARRAY_ELEMENTS) {
    cursor.skip(length * elementSize, what)
    return { kind: 'array', elementType, length, elements: undefined }
  }
  const elements: (number | bigint | boolean)[] = []
  for (let i = 0; i < length; i++) elements.push(cursor.fixed(elementType, what))
  return { kind: 'array', elementType, length, elements }
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment
}

function readAlignment(metadata: ReadonlyMap<string, GgufMetadataEntry>): number {
  const entry = metadata.get('general.alignment')
  if (entry === undefined) return GGUF_ALIGNMENT_BYTES
  // llama.cpp reads it with gguf_get_val_u32, which asserts on any other type.
  if (entry.kind !== 'scalar' || entry.type !== GgufValueType.UINT32) {
    throw malformed('general.alignment must be a u32')
  }
  const alignment = entry.value as number
  if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
    throw malformed(`general.alignment is ${alignment}, not a power of two`)
  }
  return alignment
}

function readTensorInfo(cursor: Cursor, index: number): GgufTensorInfo {
  const name = cursor.string(`the name of tensor ${index}`, MAX_KEY_BYTES)
  if (Buffer.byteLength(name) >= GGML_MAX_NAME) {
    throw malformed(`tensor ${index} has a ${Buffer.byteLength(name)}-byte name; llama.cpp allows ${GGML_MAX_NAME - 1}`)
  }
  const label = `tensor '${name}'`
  const dimCount = cursor.u32(`the dimension count of ${label}`)
  if (dimCount > GGML_MAX_DIMS) throw malformed(`${label} has ${dimCount} dimensions (at most ${GGML_MAX_DIMS})`)
  const dims: number[] = []
  let elements = 1
  for (let d = 0; d < dimCount; d++) {
    const dim = cursor.u64(`the dimensions of ${label}`)
    if (dim < 1n || dim > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${label} has dimension ${dim}`)
    elements *= Number(dim)
    if (!Number.isSafeInteger(elements)) throw malformed(`${label} has an impossible element count`)
    dims.push(Number(dim))
  }
  const type = cursor.u32(`the type of ${label}`)
  const layout = GGML_TYPES.get(type)
  if (layout === undefined) {
    throw malformed(
      REMOVED_GGML_TYPES.has(type)
        ? `${label} uses ggml type ${type}, which llama.cpp no longer supports; re-quantize the model`
        : `${label} uses ggml type ${type}, which this node's llama.cpp does not know`,
    )
  }
  const [typeName, typeSize, blockSize] = layout
  const rowElements = dims[0] ?? 1
  if (rowElements % blockSize !== 0) {
    throw malformed(`${label} (${typeName}) has rows of ${rowElements} elements, not a multiple of ${blockSize}`)
  }
  const sizeBytes = (elements / blockSize) * typeSize
  if (!Number.isSafeInteger(sizeBytes)) throw malformed(`${label} has an impossible size`)
  const offset = cursor.u64(`the offset of ${label}`)
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${label} has offset ${offset}`)
  return { name, dims, type, typeName, offset: Number(offset), sizeBytes }
}

/**
 * Parses a GGUF header from `bytes`, the first bytes of a file of `fileSize` bytes. Throws
 * {@link ModelRejectedError} for a file that is not GGUF, is malformed or truncated, and `NeedMoreBytes`
 * (internal) when the header runs past `bytes`.
 */
function parseHeader(bytes: Buffer, fileSize: number): GgufHeader {
  const cursor = new Cursor(bytes, fileSize)
  if (fileSize < 4 || bytes.subarray(0, 4).toString('latin1') !== GGUF_MAGIC) {
    throw new ModelRejectedError('not-gguf', `it does not start with '${GGUF_MAGIC}', so it is not a GGUF model file`)
  }
  cursor.skip(4, 'the magic')
  const version = cursor.u32('the version')
  if (version !== 2 && version !== 3) {
    const bigEndianVersion = bytes.readUInt32BE(4)
    if (bigEndianVersion === 2 || bigEndianVersion === 3) {
      throw new ModelRejectedError('unsupported-version', 'it is a big-endian GGUF file; use a little-endian one')
    }
    throw new ModelRejectedError(
      'unsupported-version',
      version === 1
        ? 'it is GGUF version 1, which llama.cpp no longer reads; re-convert it with a current llama.cpp'
        : `it is GGUF version ${version}; this node reads versions 2 and 3`,
    )
  }
  const tensorCount = cursor.u64('the tensor count')
  const metadataCount = cursor.u64('the metadata count')
  // Each metadata entry takes at least 13 bytes and each tensor at least 24, so the counts are bounded by the size.
  const smallestHeader = 24n + metadataCount * 13n + tensorCount * 24n
  if (smallestHeader > BigInt(fileSize)) {
    throw malformed(
      `it claims ${metadataCount} metadata entries and ${tensorCount} tensors, more than a file of ${fileSize} bytes can hold (the counts are corrupt)`,
    )
  }
  if (metadataCount > BigInt(MAX_METADATA_ENTRIES)) {
    throw malformed(`it claims ${metadataCount} metadata entries (at most ${MAX_METADATA_ENTRIES})`)
  }
  if (tensorCount > BigInt(MAX_TENSORS)) throw malformed(`it claims ${tensorCount} tensors (at most ${MAX_TENSORS})`)

  const metadata = new Map<string, GgufMetadataEntry>()
  for (let i = 0; i < Number(metadataCount); i++) {
    const key = cursor.string(`metadata key ${i}`, MAX_KEY_BYTES)
    if (metadata.has(key)) throw malformed(`metadata key '${key}' appears twice`)
    const type = cursor.u32(`the type of metadata '${key}'`)
    metadata.set(key, readValue(cursor, type, `metadata '${key}'`))
  }
  const alignment = readAlignment(metadata)

  const tensors: GgufTensorInfo[] = []
  const names = new Set<string>()
  for (let i = 0; i < Number(tensorCount); i++) {
    const tensor = readTensorInfo(cursor, i)
    if (names.has(tensor.name)) throw malformed(`tensor '${tensor.name}' appears twice`)
    names.add(tensor.name)
    tensors.push(tensor)
  }
  const dataOffset = alignUp(cursor.position, alignment)
  const dataBytes = fileSize - dataOffset
  for (const tensor of tensors) {
    if (tensor.offset % alignment !== 0) {
      throw malformed(`tensor '${tensor.name}' starts at offset ${tensor.offset}, not a multiple of ${alignment}`)
    }
    if (tensor.offset + tensor.sizeBytes > dataBytes) {
      throw truncated(
        `tensor '${tensor.name}' (${tensor.sizeBytes} bytes at data offset ${tensor.offset}) ends past the end of the file, which has ${Math.max(0, dataBytes)} bytes of tensor data`,
      )
    }
  }
  return { version, fileSizeBytes: fileSize, metadata, tensors, alignment, dataOffset }
}

/** Parses a whole GGUF file held in memory (tests, and callers that already have the bytes). */
export function parseGgufHeader(bytes: Buffer): GgufHeader {
  return parseHeader(bytes, bytes.length)
}

/**
 * Reads and checks the GGUF header of the file at `path`: magic, version, counts and lengths against the file
 * size, value types, alignment, tensor types and that every tensor's data lies inside the file. Reads at most
 * `maxHeaderBytes` (plus nothing of the tensor data). Throws {@link ModelRejectedError} (without the path in the
 * message; {@link validateGgufFile} adds it) or a file system error.
 */
export async function readGgufHeader(
  path: string,
  options: { maxHeaderBytes?: number; signal?: AbortSignal | undefined } = {},
): Promise<GgufHeader> {
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES
  const handle = await open(path, 'r')
  try {
    const { size } = await handle.stat()
    let bytes = Buffer.alloc(0)
    let wanted = Math.min(size, INITIAL_READ_BYTES, maxHeaderBytes)
    for (;;) {
      options.signal?.throwIfAborted()
      if (wanted > bytes.length) {
        const grown = Buffer.allocUnsafe(wanted)
        bytes.copy(grown)
        let filled = bytes.length
        while (filled < wanted) {
          const { bytesRead } = await handle.read(grown, filled, wanted - filled, filled)
          if (bytesRead === 0) break
          filled += bytesRead
        }
        if (filled < wanted) {
          throw new ModelRejectedError('changed-while-reading', 'the file got shorter while it was being read')
        }
        bytes = grown
      }
      try {
        return parseHeader(bytes, size)
      } catch (error) {
        if (!(error instanceof NeedMoreBytes)) throw error
        if (error.end > maxHeaderBytes) {
          throw malformed(
            `its metadata and tensor table take more than ${maxHeaderBytes} bytes, far more than any real model's`,
          )
        }
        wanted = Math.min(size, maxHeaderBytes, Math.max(error.end, bytes.length * 2))
      }
    }
  } finally {
    await handle.close()
  }
}
