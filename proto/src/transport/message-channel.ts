import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { z } from 'zod'
import { encodeFrame, FrameDecoder } from '../codec/framing.js'
import { decodeMessage, encodeMessage } from '../codec/message-codec.js'
import {
  FRAME_RECEIVE_TIMEOUT_MS,
  MAX_BUFFERED_FRAME_BYTES_TOTAL,
  MAX_CHANNEL_BACKLOG_BYTES,
  MAX_FRAME_BYTES,
  MAX_STREAM_READ_BUFFER_BYTES,
  MAX_STREAM_WRITE_BUFFER_BYTES,
  STREAM_IDLE_TIMEOUT_MS,
} from '../constants.js'
import { ErrorCode, LullError, MalformedMessageError } from '../errors.js'
import type { AnyMessage } from '../messages.js'

/** Sees every frame payload a channel sends or receives, before decoding. Used to audit what crosses a peer. */
export type FrameObserver = (direction: 'in' | 'out', payload: Uint8Array) => void

/**
 * How long a channel waits for a peer and how much it holds for one. A limit of `Infinity` turns that check off.
 * The defaults are the constants of the same meaning in `constants.ts`.
 */
export interface ChannelLimits {
  /** Abort the stream after this long with no bytes received and no message sent. */
  idleTimeoutMs: number
  /** Abort the stream when a frame is still incomplete this long after its first byte arrived. */
  frameTimeoutMs: number
  /** Received frames waiting for the reader, in bytes, before reading pauses (the peer then waits for window). */
  maxBacklogBytes: number
  /** libp2p's `maxReadBufferLength` for the stream: bytes held while reading is paused before the stream resets. */
  maxReadBufferBytes: number
  /** libp2p's `maxWriteBufferLength` for the stream: bytes queued for a peer that does not read before it resets. */
  maxWriteBufferBytes: number
  /** Bytes of unfinished frames all channels in the process may hold together (checked by each channel). */
  maxTotalFrameBytes: number
}

/** The limits a channel gets unless something else is set. */
export const DEFAULT_CHANNEL_LIMITS: Readonly<ChannelLimits> = Object.freeze({
  idleTimeoutMs: STREAM_IDLE_TIMEOUT_MS,
  frameTimeoutMs: FRAME_RECEIVE_TIMEOUT_MS,
  maxBacklogBytes: MAX_CHANNEL_BACKLOG_BYTES,
  maxReadBufferBytes: MAX_STREAM_READ_BUFFER_BYTES,
  maxWriteBufferBytes: MAX_STREAM_WRITE_BUFFER_BYTES,
  maxTotalFrameBytes: MAX_BUFFERED_FRAME_BYTES_TOTAL,
})

let processDefaults: Readonly<ChannelLimits> = DEFAULT_CHANNEL_LIMITS

/**
 * Changes, for this process, the limits of channels created from now on whose options do not set them; returns the
 * previous defaults so they can be restored. Components create their channels internally, so this is how a test (or
 * an embedder with unusual needs) shortens a coordinator's timeouts without new options on every component.
 * Channels already open keep their limits.
 */
export function setDefaultChannelLimits(limits: Partial<ChannelLimits>): Readonly<ChannelLimits> {
  const previous = processDefaults
  processDefaults = Object.freeze({ ...previous, ...definedOnly(limits) })
  return previous
}

/** The limits a channel created now gets by default. */
export function defaultChannelLimits(): Readonly<ChannelLimits> {
  return processDefaults
}

/** What all channels in this process hold right now. */
export interface ChannelStats {
  /** Channels whose stream has not closed yet. */
  openChannels: number
  /** Bytes held for frames that have started to arrive but are not complete yet. */
  unfinishedFrameBytes: number
  /** Bytes of received frames waiting for their channel's reader. */
  backlogBytes: number
}

const stats: ChannelStats = { openChannels: 0, unfinishedFrameBytes: 0, backlogBytes: 0 }

export function channelStats(): ChannelStats {
  return { ...stats }
}

/** A peer stayed silent, or left a frame unfinished, for longer than the channel's limits allow. */
export class ChannelTimeoutError extends LullError {
  override name = 'ChannelTimeoutError'
  constructor(message: string) {
    super(ErrorCode.Timeout, message)
  }
}

export interface MessageChannelOptions<S extends z.ZodType> {
  /** The messages this side accepts; anything else is reported as malformed. */
  inbound: S
  /** @default MAX_FRAME_BYTES */
  maxFrameBytes?: number
  observer?: FrameObserver
  /** Overrides of the process defaults ({@link setDefaultChannelLimits}). */
  limits?: Partial<ChannelLimits>
}

/**
 * One received frame: a valid message, or the typed error it earned. `fatal` errors (an oversized frame, a timeout)
 * leave the stream out of step or gone; the channel stops reading after one.
 */
export type Received<T> = { ok: true; message: T } | { ok: false; error: LullError; fatal: boolean }

type Queued = { payload: Uint8Array } | { error: LullError }

/**
 * Length-prefixed msgpack messages over one libp2p stream, each validated against the inbound schema. Bad input
 * never throws out of the iterator: it arrives as a typed error for the owner to answer.
 *
 * The channel also keeps the peer within its {@link ChannelLimits}: frames are cut from the stream as bytes arrive
 * (so a partial frame is never held longer than `frameTimeoutMs`, however slowly the owner reads); a stream with no
 * traffic either way for `idleTimeoutMs` is aborted (libp2p 3.3 stores a stream's `inactivityTimeout` but does not
 * enforce it); and when the owner falls `maxBacklogBytes` behind, the stream is paused so that yamux flow control
 * holds the peer back instead of memory filling up.
 */
export class MessageChannel<S extends z.ZodType, Out extends AnyMessage = AnyMessage> {
  readonly stream: Stream
  readonly limits: Readonly<ChannelLimits>
  private readonly inbound: S
  private readonly maxFrameBytes: number
  private readonly observer: FrameObserver | undefined
  /** Cuts frames from received bytes; dropped once no more frames can arrive. */
  private decoder: FrameDecoder | undefined
  /** Frames (or one fatal error) received and not yet read by the owner. */
  private queue: Queued[] = []
  private queueHead = 0
  private queuedBytes = 0
  /** Whether `queuedBytes` is still counted in the process-wide stats (until the stream closes). */
  private backlogCounted = true
  /** Bytes of this channel's unfinished frame counted in the process-wide total. */
  private countedFrameBytes = 0
  /** No more data will arrive; `endError` says why when it was not a clean end. */
  private ended = false
  private endError: unknown
  /** Set when the channel itself ended the stream (timeout, budget, oversized frame). */
  private failure: LullError | undefined
  private paused = false
  private closed = false
  private wake: (() => void) | undefined
  private lastActivityMs = now()
  private frameStartedMs: number | undefined
  private watchdog: NodeJS.Timeout | undefined
  private watchdogAtMs = Number.POSITIVE_INFINITY
  /** Frames sent in this turn of the event loop, handed to the stream together at its end (see `send`). */
  private outbox: Uint8Array[] = []
  /** Settles when the outbox has been handed to the stream: whether the stream can take more right away. */
  private outboxSent: Promise<boolean> | undefined

  constructor(stream: Stream, options: MessageChannelOptions<S>) {
    this.stream = stream
    this.inbound = options.inbound
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES
    this.observer = options.observer
    this.limits = Object.freeze({ ...processDefaults, ...definedOnly(options.limits ?? {}) })

    stream.maxReadBufferLength = this.limits.maxReadBufferBytes
    stream.maxWriteBufferLength = this.limits.maxWriteBufferBytes
    // Informational (libp2p 3.3 does not act on it): this channel enforces it.
    if (Number.isFinite(this.limits.idleTimeoutMs)) stream.inactivityTimeout = this.limits.idleTimeoutMs

    if (stream.status !== 'open') {
      this.closed = true
      this.ended = true
      return
    }
    stats.openChannels++
    this.decoder = new FrameDecoder(this.maxFrameBytes)
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
    stream.addEventListener('close', this.onClose)
    if (stream.readStatus !== 'readable' && stream.readStatus !== 'paused') this.ended = true
    this.arm()
  }

  get isOpen(): boolean {
    return this.stream.status === 'open' && this.stream.writeStatus === 'writable'
  }

  /**
   * Queues a message; resolves once the stream can take more (backpressure). Messages keep their order.
   *
   * Messages sent in one turn of the event loop (including its promise jobs) go to the stream together, as one
   * write: one yamux frame and one noise message for all of them, instead of one each. A relay that forwards an
   * answer's last chunk and its `end` together, or several requests' chunks, pays the transport's per-message cost
   * once.
   * @throws when the stream is closed
   */
  async send(message: Out, options: { signal?: AbortSignal } = {}): Promise<void> {
    const payload = encodeMessage(message)
    this.observer?.('out', payload)
    this.lastActivityMs = now()
    const frame = encodeFrame(payload, this.maxFrameBytes)
    // A stream that cannot be written refuses the frame now, with the stream's own error.
    if (this.stream.writeStatus !== 'writable') this.stream.send(frame)
    this.outbox.push(frame)
    if (this.outboxSent === undefined) {
      const sent: Promise<boolean> = new Promise((resolve, reject) => {
        process.nextTick(() => {
          // Already written by a close or reset in this turn: nothing of this turn is left to send.
          if (this.outboxSent !== sent) return resolve(true)
          try {
            resolve(this.flushOutbox())
          } catch (error) {
            reject(error)
          }
        })
      })
      this.outboxSent = sent
    }
    if (!(await this.outboxSent)) await this.stream.onDrain(options)
  }

  /** Hands the frames sent so far to the stream; whether it can take more right away. */
  private flushOutbox(): boolean {
    const frames = this.outbox
    this.outbox = []
    this.outboxSent = undefined
    if (frames.length === 0) return true
    return this.stream.send(frames.length === 1 ? (frames[0] as Uint8Array) : Buffer.concat(frames))
  }

  /** Sends without waiting; returns false when the stream is already gone. */
  trySend(message: Out): boolean {
    if (!this.isOpen) return false
    // A send that fails later (the stream closed meanwhile) has nowhere to report to: the reader sees the close.
    this.send(message).catch(() => {})
    return true
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Received<z.infer<S>>> {
    for (;;) {
      const item = this.dequeue()
      if (item === undefined) {
        if (this.ended) break
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        continue
      }
      if ('error' in item) {
        yield { ok: false, error: item.error, fatal: true }
        return
      }
      this.observer?.('in', item.payload)
      let received: Received<z.infer<S>>
      try {
        received = { ok: true, message: decodeMessage(item.payload, this.inbound) }
      } catch (error) {
        received = { ok: false, error: asLullError(error), fatal: false }
      }
      yield received
    }
    if (this.failure !== undefined) {
      yield { ok: false, error: this.failure, fatal: true }
      return
    }
    if (this.endError !== undefined) throw this.endError
  }

  /** Closes the writing side after queued messages are sent; bounded by `signal` or 5 s. */
  async close(options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      this.sendOutboxNow()
      await this.stream.close({ signal: options.signal ?? AbortSignal.timeout(5_000) })
    } catch {
      this.stream.abort(new Error('stream close timed out'))
    }
  }

  /** Resets the stream; messages sent in this turn are written first, as they would have been without batching. */
  abort(reason: Error): void {
    this.sendOutboxNow()
    this.stream.abort(reason)
  }

  /**
   * Writes the messages sent in this turn at once, before the stream is closed or reset under them (an error reply
   * then a reset, say). Their senders still hear how it went from the pending flush.
   */
  private sendOutboxNow(): void {
    if (this.outbox.length === 0 || this.stream.writeStatus !== 'writable') return
    try {
      this.flushOutbox()
    } catch {
      // The stream is going anyway.
    }
  }

  private readonly onMessage = (event: StreamMessageEvent): void => {
    const decoder = this.decoder
    if (decoder === undefined || this.failure !== undefined) return
    const { data } = event
    this.lastActivityMs = now()
    let frames: Uint8Array[]
    try {
      frames = decoder.push(data instanceof Uint8Array ? data : data.subarray())
    } catch (error) {
      // An oversized frame: the byte stream is out of step. The owner gets the error and decides what to send;
      // whatever else arrives is dropped. The idle watchdog still ends the stream if the owner does not.
      this.enqueue({ error: asLullError(error) })
      this.ended = true
      this.finishReading()
      return
    }
    for (const payload of frames) this.enqueue({ payload })
    this.settleFrameBytes()
    if (!decoder.inFrame) {
      this.frameStartedMs = undefined
    } else if (this.frameStartedMs === undefined && !this.paused) {
      this.frameStartedMs = now()
      this.arm()
    }
    if (decoder.inFrame && stats.unfinishedFrameBytes > this.limits.maxTotalFrameBytes) {
      this.fail(
        new LullError(
          ErrorCode.NoCapacity,
          `this peer holds ${stats.unfinishedFrameBytes} bytes of unfinished frames, more than its ${this.limits.maxTotalFrameBytes}-byte budget; retry later`,
        ),
      )
      return
    }
    if (this.queuedBytes > this.limits.maxBacklogBytes) this.pause()
  }

  private readonly onRemoteCloseWrite = (): void => {
    this.ended = true
    // A frame left unfinished now never completes: drop it. Not at once: a muxer may deliver the data of the frame
    // that carried the close right after this event, and bytes held back by a pause still come out on resume.
    queueMicrotask(() => {
      if (!this.paused && this.stream.readBufferLength === 0) this.finishReading()
    })
    this.notify()
  }

  private readonly onClose = (event: StreamCloseEvent): void => {
    if (this.closed) return
    this.closed = true
    stats.openChannels--
    this.ended = true
    if (event.error !== undefined && this.endError === undefined) this.endError = event.error
    this.stopWatchdog()
    this.finishReading()
    if (this.backlogCounted) {
      stats.backlogBytes -= this.queuedBytes
      this.backlogCounted = false
    }
    this.stream.removeEventListener('message', this.onMessage)
    this.stream.removeEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
    this.stream.removeEventListener('close', this.onClose)
    this.notify()
  }

  /** No more frames can arrive: an unfinished one is dropped, and its bytes released. */
  private finishReading(): void {
    this.decoder = undefined
    this.frameStartedMs = undefined
    this.settleFrameBytes()
  }

  private enqueue(item: Queued): void {
    this.queue.push(item)
    if ('payload' in item) {
      this.queuedBytes += item.payload.byteLength
      if (this.backlogCounted) stats.backlogBytes += item.payload.byteLength
    }
    this.notify()
  }

  private dequeue(): Queued | undefined {
    if (this.queueHead >= this.queue.length) {
      if (this.paused) this.resume()
      if (this.queueHead >= this.queue.length) return undefined
    }
    const item = this.queue[this.queueHead] as Queued
    this.queue[this.queueHead] = undefined as unknown as Queued
    this.queueHead++
    if (this.queueHead === this.queue.length) {
      this.queue = []
      this.queueHead = 0
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead)
      this.queueHead = 0
    }
    if ('payload' in item) {
      this.queuedBytes -= item.payload.byteLength
      if (this.backlogCounted) stats.backlogBytes -= item.payload.byteLength
    }
    if (this.paused && this.queuedBytes <= this.limits.maxBacklogBytes / 2) this.resume()
    return item
  }

  private notify(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  /** Stops taking data from the stream: yamux stops granting window, so the peer waits. */
  private pause(): void {
    if (this.paused || this.closed) return
    try {
      this.stream.pause()
      this.paused = true
      // The peer cannot finish a frame while this side is not reading: its frame clock stops.
      this.frameStartedMs = undefined
    } catch {
      // The readable end is already closing.
    }
  }

  private resume(): void {
    if (!this.paused) return
    this.paused = false
    try {
      // Synchronously delivers what the stream buffered meanwhile (through onMessage).
      this.stream.resume()
    } catch {
      // The readable end closed meanwhile.
    }
    if (this.ended && this.stream.readBufferLength === 0) this.finishReading()
    if (this.decoder?.inFrame === true && this.frameStartedMs === undefined && !this.closed) {
      this.frameStartedMs = now()
      this.arm()
    }
  }

  /** Brings the process-wide count of unfinished frame bytes up to date with this channel's decoder. */
  private settleFrameBytes(): void {
    const held = this.decoder?.retainedBytes ?? 0
    stats.unfinishedFrameBytes += held - this.countedFrameBytes
    this.countedFrameBytes = held
  }

  /** Ends the stream because the peer broke a limit; the owner reads the error as the last item. */
  private fail(error: LullError): void {
    if (this.failure !== undefined || this.closed) return
    this.failure = error
    this.ended = true
    this.sendOutboxNow()
    this.stream.abort(error)
    this.notify()
  }

  /** Schedules the watchdog for the earliest deadline (idle, or the frame in progress). */
  private arm(): void {
    if (this.closed || this.failure !== undefined) return
    const idleAt = this.lastActivityMs + this.limits.idleTimeoutMs
    const frameAt =
      this.frameStartedMs === undefined ? Number.POSITIVE_INFINITY : this.frameStartedMs + this.limits.frameTimeoutMs
    const at = Math.min(idleAt, frameAt)
    if (!Number.isFinite(at)) return
    // An earlier watchdog re-checks and re-arms when it fires.
    if (this.watchdog !== undefined && this.watchdogAtMs <= at) return
    clearTimeout(this.watchdog)
    this.watchdogAtMs = at
    this.watchdog = setTimeout(this.onWatchdog, Math.min(Math.max(0, at - now()), MAX_TIMER_MS))
    this.watchdog.unref()
  }

  private readonly onWatchdog = (): void => {
    this.watchdog = undefined
    this.watchdogAtMs = Number.POSITIVE_INFINITY
    if (this.closed || this.failure !== undefined) return
    const at = now()
    if (this.frameStartedMs !== undefined && at - this.frameStartedMs >= this.limits.frameTimeoutMs) {
      const got = this.decoder?.bufferedBytes ?? 0
      this.fail(
        new ChannelTimeoutError(
          `a frame was still incomplete ${this.limits.frameTimeoutMs} ms after it began (${got} bytes received)`,
        ),
      )
      return
    }
    if (at - this.lastActivityMs >= this.limits.idleTimeoutMs) {
      this.fail(new ChannelTimeoutError(`no data either way for ${this.limits.idleTimeoutMs} ms`))
      return
    }
    this.arm()
  }

  private stopWatchdog(): void {
    clearTimeout(this.watchdog)
    this.watchdog = undefined
    this.watchdogAtMs = Number.POSITIVE_INFINITY
  }
}

/** Longest delay `setTimeout` takes; longer waits re-arm when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1

function now(): number {
  return performance.now()
}

function definedOnly(limits: Partial<ChannelLimits>): Partial<ChannelLimits> {
  const out: Partial<ChannelLimits> = {}
  for (const [key, value] of Object.entries(limits) as Array<[keyof ChannelLimits, number | undefined]>) {
    if (value === undefined) continue
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`channel limit ${key} must be a non-negative number or Infinity, got ${value}`)
    }
    out[key] = value
  }
  return out
}

function asLullError(error: unknown): LullError {
  if (error instanceof LullError) return error
  return new MalformedMessageError('undecodable frame', { cause: error })
}
