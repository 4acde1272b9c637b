import { describe, expect, it } from 'vitest'
import { FrameTooLargeError } from '../errors.js'
import { encodeFrame, FrameDecoder } from './framing.js'

describe('FrameDecoder', () => {
  it('reassembles frames split at every byte boundary', () => {
    const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(1000).fill(7)]
    const stream = Uint8Array.from(payloads.flatMap((p) => [...encodeFrame(p)]))
    for (const step of [1, 2, 3, 5, 64, stream.length]) {
      const decoder = new FrameDecoder()
      const out: Uint8Array[] = []
      for (let i = 0; i < stream.length; i += step) out.push(...decoder.push(stream.subarray(i, i + step)))
      expect(out.map((f) => [...f])).toEqual(payloads.map((p) => [...p]))
      expect(decoder.bufferedBytes).toBe(0)
    }
  })

  it('rejects an oversized frame from its header alone', () => {
    const decoder = new FrameDecoder(1024)
    expect(() => decoder.push(Uint8Array.from([0x00, 0x00, 0x04, 0x01]))).toThrow(FrameTooLargeError)
  })

  it('refuses to encode an oversized payload', () => {
    expect(() => encodeFrame(new Uint8Array(11), 10)).toThrow(FrameTooLargeError)
  })
})
