import type { Stream } from '@libp2p/interface'
import type { z } from 'zod'
import { encodeFrame, FrameDecoder } from '../codec/framing.js'
import { decodeMessage, encodeMessage } from '../codec/message-codec.js'
import { MAX_FRAME_BYTES } from '../constants.js'
import { LullError, MalformedMessageError } from '../errors.js'
import type { AnyMessage } from '../messages.js'

/** Sees every frame payload a channel sends or receives, before decoding. Used to audit what crosses a peer. */
export type FrameObserver = (direction: 'in' | 'out', payload: Uint8Array) => void

export interface MessageChannelOptions<S extends z.ZodType> {
  /** The messages this side accepts; anything else is reported as malformed. */
  inbound: S
  /** @default MAX_FRAME_BYTES */
  maxFrameBytes?: number
  observer?: FrameObserver
}

/**
 * One received frame: a valid message, or the typed error it earned. `fatal` errors (an oversized frame) leave the
 * stream out of step; the channel stops reading after one.
 */
export type Received<T> = { ok: true; message: T } | { ok: false; error: LullError; fatal: boolean }

/**
 * Length-prefixed msgpack messages over one libp2p stream, each validated against the inbound schema. Bad input
 * never throws out of the iterator: it arrives as a typed error for the owner to answer.
 */
export class MessageChannel<S extends z.ZodType, Out extends AnyMessage = AnyMessage> {
  readonly stream: Stream
  private readonly inbound: S
  private readonly maxFrameBytes: number
  private readonly observer: FrameObserver | undefined

  constructor(stream: Stream, options: MessageChannelOptions<S>) {
    this.stream = stream
    this.inbound = options.inbound
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES
    this.observer = options.observer
  }

  get isOpen(): boolean {
    return this.stream.status === 'open' && this.stream.writeStatus === 'writable'
  }

  /**
   * Queues a message; resolves once the stream can take more (backpressure). Messages keep their order.
   * @throws when the stream is closed
   */
  async send(message: Out, options: { signal?: AbortSignal } = {}): Promise<void> {
    const payload = encodeMessage(message)
    this.observer?.('out', payload)
    if (!this.stream.send(encodeFrame(payload, this.maxFrameBytes))) await this.stream.onDrain(options)
  }

  /** Sends without waiting; returns false when the stream is already gone. */
  trySend(message: Out): boolean {
    if (!this.isOpen) return false
    try {
      void this.send(message).catch(() => {})
      return true
    } catch {
      return false
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Received<z.infer<S>>> {
    const decoder = new FrameDecoder(this.maxFrameBytes)
    for await (const data of this.stream) {
      let frames: Uint8Array[]
      try {
        frames = decoder.push(data instanceof Uint8Array ? data : data.subarray())
      } catch (error) {
        yield { ok: false, error: asLullError(error), fatal: true }
        return
      }
      for (const payload of frames) {
        this.observer?.('in', payload)
        try {
          yield { ok: true, message: decodeMessage(payload, this.inbound) }
        } catch (error) {
          yield { ok: false, error: asLullError(error), fatal: false }
        }
      }
    }
  }

  /** Closes the writing side after queued messages are sent; bounded by `signal` or 5 s. */
  async close(options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      await this.stream.close({ signal: options.signal ?? AbortSignal.timeout(5_000) })
    } catch {
      this.stream.abort(new Error('stream close timed out'))
    }
  }

  abort(reason: Error): void {
    this.stream.abort(reason)
  }
}

function asLullError(error: unknown): LullError {
  if (error instanceof LullError) return error
  return new MalformedMessageError('undecodable frame', { cause: error })
}
