import { MAX_FRAME_BYTES } from '../constants.js'
import { FrameTooLargeError } from '../errors.js'

/** Bytes of the big-endian length prefix in front of every frame. */
export const FRAME_HEADER_BYTES = 4

/** First capacity of the buffer that collects a frame arriving in pieces; it doubles as bytes arrive. */
const INITIAL_BODY_CAPACITY = 4096

/** Prefixes `payload` with its length. */
export function encodeFrame(payload: Uint8Array, maxFrameBytes = MAX_FRAME_BYTES): Uint8Array {
  if (payload.byteLength > maxFrameBytes) throw new FrameTooLargeError(payload.byteLength, maxFrameBytes)
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength)
  new DataView(frame.buffer).setUint32(0, payload.byteLength)
  frame.set(payload, FRAME_HEADER_BYTES)
  return frame
}

/**
 * Splits a byte stream into frames. The length prefix is checked against the limit as soon as it arrives, before
 * any of the body is buffered; after a {@link FrameTooLargeError} the stream is out of step and every later `push`
 * throws the same error.
 *
 * Memory: a frame that arrives whole inside one chunk is returned as a view of that chunk, without copying. A frame
 * that arrives in pieces is copied into one buffer that grows (doubling) with the bytes actually received, up to
 * the announced size: announcing a large frame costs nothing until its bytes arrive, and holding part of a frame
 * never keeps the (possibly much larger) buffers its pieces arrived in alive.
 */
export class FrameDecoder {
  private readonly maxFrameBytes: number
  /** The length prefix, while it arrives in pieces. */
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES)
  private headerFilled = 0
  /** Announced size of the frame in progress; -1 while waiting for a length prefix. */
  private expected = -1
  /** The frame in progress, when it arrives in pieces. */
  private body: Uint8Array | undefined
  private bodyFilled = 0
  private failure: FrameTooLargeError | undefined

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > 0xffff_ffff) {
      throw new RangeError(`FrameDecoder: maxFrameBytes must be an integer in 0..2^32-1, got ${maxFrameBytes}`)
    }
    this.maxFrameBytes = maxFrameBytes
  }

  /** Bytes received but not yet returned as a frame (a partial length prefix or frame body). */
  get bufferedBytes(): number {
    return this.headerFilled + this.bodyFilled
  }

  /** Bytes of memory this decoder holds for a frame in progress (at least {@link bufferedBytes}). */
  get retainedBytes(): number {
    return this.headerFilled + (this.body?.byteLength ?? 0)
  }

  /** True between the first byte of a frame and its last: part of a length prefix or of a body is still missing. */
  get inFrame(): boolean {
    return this.headerFilled > 0 || this.expected >= 0
  }

  /** Adds received bytes; returns every frame they complete, in order. */
  push(data: Uint8Array): Uint8Array[] {
    if (this.failure !== undefined) throw this.failure
    const frames: Uint8Array[] = []
    const end = data.byteLength
    let offset = 0
    while (offset < end || this.expected === 0) {
      if (this.expected < 0) {
        let size: number
        if (this.headerFilled === 0 && end - offset >= FRAME_HEADER_BYTES) {
          size = new DataView(data.buffer, data.byteOffset + offset, FRAME_HEADER_BYTES).getUint32(0)
          offset += FRAME_HEADER_BYTES
        } else {
          const used = Math.min(FRAME_HEADER_BYTES - this.headerFilled, end - offset)
          this.header.set(data.subarray(offset, offset + used), this.headerFilled)
          this.headerFilled += used
          offset += used
          if (this.headerFilled < FRAME_HEADER_BYTES) break
          this.headerFilled = 0
          size = new DataView(this.header.buffer).getUint32(0)
        }
        if (size > this.maxFrameBytes) {
          this.failure = new FrameTooLargeError(size, this.maxFrameBytes)
          throw this.failure
        }
        this.expected = size
      }
      const missing = this.expected - this.bodyFilled
      if (missing > 0 && offset === end) break
      if (this.bodyFilled === 0 && end - offset >= missing) {
        // The whole frame is in this chunk: hand out a view, no copy.
        frames.push(data.subarray(offset, offset + missing))
        offset += missing
        this.expected = -1
        continue
      }
      const used = Math.min(missing, end - offset)
      this.append(data.subarray(offset, offset + used))
      offset += used
      if (this.bodyFilled < this.expected) break
      frames.push((this.body as Uint8Array).subarray(0, this.expected))
      this.body = undefined
      this.bodyFilled = 0
      this.expected = -1
    }
    return frames
  }

  /** Copies `bytes` into the body buffer, growing it geometrically but never past the announced size. */
  private append(bytes: Uint8Array): void {
    const needed = this.bodyFilled + bytes.byteLength
    let body = this.body
    if (body === undefined || body.byteLength < needed) {
      const capacity = Math.min(this.expected, Math.max(needed, INITIAL_BODY_CAPACITY, 2 * (body?.byteLength ?? 0)))
      const grown = new Uint8Array(capacity)
      if (body !== undefined) grown.set(body.subarray(0, this.bodyFilled))
      body = grown
      this.body = grown
    }
    body.set(bytes, this.bodyFilled)
    this.bodyFilled = needed
  }
}
