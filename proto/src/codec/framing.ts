import { MAX_FRAME_BYTES } from '../constants.js'
import { FrameTooLargeError } from '../errors.js'

/** Bytes of the big-endian length prefix in front of every frame. */
export const FRAME_HEADER_BYTES = 4

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
 * any of the body is buffered; after a {@link FrameTooLargeError} the stream is out of step and must be closed.
 */
export class FrameDecoder {
  private readonly maxFrameBytes: number
  private chunks: Uint8Array[] = []
  private buffered = 0
  private expected = -1

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes
  }

  /** Bytes received but not yet returned as a frame. */
  get bufferedBytes(): number {
    return this.buffered
  }

  /** Adds received bytes; returns every frame they complete, in order. */
  push(data: Uint8Array): Uint8Array[] {
    if (data.byteLength > 0) {
      this.chunks.push(data)
      this.buffered += data.byteLength
    }
    const frames: Uint8Array[] = []
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) break
        const header = this.take(FRAME_HEADER_BYTES)
        const size = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES).getUint32(0)
        if (size > this.maxFrameBytes) throw new FrameTooLargeError(size, this.maxFrameBytes)
        this.expected = size
      }
      if (this.buffered < this.expected) break
      frames.push(this.take(this.expected))
      this.expected = -1
    }
    return frames
  }

  private take(count: number): Uint8Array {
    const first = this.chunks[0]
    if (first !== undefined && first.byteLength >= count) {
      const out = first.subarray(0, count)
      if (first.byteLength === count) this.chunks.shift()
      else this.chunks[0] = first.subarray(count)
      this.buffered -= count
      return out
    }
    const out = new Uint8Array(count)
    let filled = 0
    while (filled < count) {
      const chunk = this.chunks[0] as Uint8Array
      const used = Math.min(chunk.byteLength, count - filled)
      out.set(chunk.subarray(0, used), filled)
      filled += used
      if (used === chunk.byteLength) this.chunks.shift()
      else this.chunks[0] = chunk.subarray(used)
    }
    this.buffered -= count
    return out
  }
}
