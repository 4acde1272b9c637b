/**
 * A minimal GGUF v3 writer: metadata key/values, tensor infos and F32 tensor data, all little-endian.
 * It writes everything into one Buffer, which suits the small models this project generates.
 */

export const GGUF_MAGIC = 'GGUF'
export const GGUF_VERSION = 3
/** Default `general.alignment`: tensor data offsets are multiples of this many bytes. */
export const GGUF_ALIGNMENT_BYTES = 32

/** GGUF metadata value type ids (gguf_type in ggml). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const

/** ggml tensor type ids (only F32 is written here). */
const GGML_TYPE_F32 = 0
const F32_SIZE_BYTES = 4

export type GgufScalar =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'u64'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }

export type GgufArray =
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'f32[]'; value: ArrayLike<number> }
  | { type: 'i32[]'; value: ArrayLike<number> }

export type GgufValue = GgufScalar | GgufArray

export interface GgufTensor {
  name: string
  /** Dimensions in ggml order: the fastest-varying (row length) first. */
  dims: readonly number[]
  data: Float32Array
}

/** Grows a byte buffer as values are appended. */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16)
  private length = 0

  get size(): number {
    return this.length
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return
    let capacity = this.buffer.length * 2
    while (capacity < this.length + bytes) capacity *= 2
    const grown = Buffer.alloc(capacity)
    this.buffer.copy(grown, 0, 0, this.length)
    this.buffer = grown
  }

  u8(value: number): void {
    this.reserve(1)
    this.buffer.writeUInt8(value, this.length)
    this.length += 1
  }

  u32(value: number): void {
    this.reserve(4)
    this.buffer.writeUInt32LE(value, this.length)
    this.length += 4
  }

  i32(value: number): void {
    this.reserve(4)
    this.buffer.writeInt32LE(value, this.length)
    this.length += 4
  }

  u64(value: number): void {
    this.reserve(8)
    this.buffer.writeBigUInt64LE(BigInt(value), this.length)
    this.length += 8
  }

  f32(value: number): void {
    this.reserve(4)
    this.buffer.writeFloatLE(value, this.length)
    this.length += 4
  }

  string(value: string): void {
    const bytes = Buffer.from(value, 'utf8')
    this.u64(bytes.length)
    this.bytes(bytes)
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length)
    this.buffer.set(bytes, this.length)
    this.length += bytes.length
  }

  padTo(alignmentBytes: number): void {
    const padding = (alignmentBytes - (this.length % alignmentBytes)) % alignmentBytes
    this.reserve(padding)
    this.buffer.fill(0, this.length, this.length + padding)
    this.length += padding
  }

  toBuffer(): Buffer {
    return this.buffer.subarray(0, this.length)
  }
}

function writeValue(sink: ByteSink, value: GgufValue): void {
  switch (value.type) {
    case 'u32':
      sink.u32(GgufValueType.UINT32)
      sink.u32(value.value)
      return
    case 'i32':
      sink.u32(GgufValueType.INT32)
      sink.i32(value.value)
      return
    case 'u64':
      sink.u32(GgufValueType.UINT64)
      sink.u64(value.value)
      return
    case 'f32':
      sink.u32(GgufValueType.FLOAT32)
      sink.f32(value.value)
      return
    case 'bool':
      sink.u32(GgufValueType.BOOL)
      sink.u8(value.value ? 1 : 0)
      return
    case 'string':
      sink.u32(GgufValueType.STRING)
      sink.string(value.value)
      return
    case 'string[]':
      sink.u32(GgufValueType.ARRAY)
      sink.u32(GgufValueType.STRING)
      sink.u64(value.value.length)
      for (const item of value.value) sink.string(item)
      return
    case 'f32[]':
      sink.u32(GgufValueType.ARRAY)
      sink.u32(GgufValueType.FLOAT32)
      sink.u64(value.value.length)
      for (let i = 0; i < value.value.length; i++) sink.f32(value.value[i] ?? 0)
      return
    case 'i32[]':
      sink.u32(GgufValueType.ARRAY)
      sink.u32(GgufValueType.INT32)
      sink.u64(value.value.length)
      for (let i = 0; i < value.value.length; i++) sink.i32(value.value[i] ?? 0)
      return
  }
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1)
}

/**
 * Serialises a GGUF v3 file. Metadata is written in the order given (a Map keeps insertion order),
 * so the same input always gives the same bytes.
 */
export function encodeGguf(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): Buffer {
  const sink = new ByteSink()
  sink.bytes(Buffer.from(GGUF_MAGIC, 'ascii'))
  sink.u32(GGUF_VERSION)
  sink.u64(tensors.length)
  sink.u64(metadata.size)
  for (const [key, value] of metadata) {
    sink.string(key)
    writeValue(sink, value)
  }

  let dataOffsetBytes = 0
  const offsets: number[] = []
  for (const tensor of tensors) {
    const count = elementCount(tensor.dims)
    if (count !== tensor.data.length) {
      throw new Error(`tensor ${tensor.name}: dims give ${count} elements but data has ${tensor.data.length}`)
    }
    offsets.push(dataOffsetBytes)
    const sizeBytes = count * F32_SIZE_BYTES
    dataOffsetBytes += sizeBytes + ((GGUF_ALIGNMENT_BYTES - (sizeBytes % GGUF_ALIGNMENT_BYTES)) % GGUF_ALIGNMENT_BYTES)
  }

  tensors.forEach((tensor, index) => {
    sink.string(tensor.name)
    sink.u32(tensor.dims.length)
    for (const dim of tensor.dims) sink.u64(dim)
    sink.u32(GGML_TYPE_F32)
    sink.u64(offsets[index] ?? 0)
  })
  sink.padTo(GGUF_ALIGNMENT_BYTES)

  for (const tensor of tensors) {
    const data = tensor.data
    // Copy through a little-endian view so the bytes do not depend on the host's endianness.
    const bytes = Buffer.alloc(data.length * F32_SIZE_BYTES)
    for (let i = 0; i < data.length; i++) bytes.writeFloatLE(data[i] ?? 0, i * F32_SIZE_BYTES)
    sink.bytes(bytes)
    sink.padTo(GGUF_ALIGNMENT_BYTES)
  }
  return sink.toBuffer()
}
