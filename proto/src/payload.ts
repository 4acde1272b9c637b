/**
 * What travels inside the ciphertext: the request body a client seals for its candidate nodes, and the pieces of
 * the answer a node seals back. The coordinator never sees these in the clear. Both are padded to fixed buckets
 * before sealing (see `padding.ts`, re-exported here), so their sealed lengths say little. Also the associated data
 * that binds a request's clear header to its ciphertext.
 */
import { z } from 'zod'
import { parseWith } from './codec/message-codec.js'
import { decodeMsgpack, encodeMsgpack } from './codec/msgpack.js'
import { MAX_CHAT_MESSAGES } from './constants.js'
import { ErrorCode, LullError } from './errors.js'
import type { RequestHeader } from './messages.js'
import {
  MAX_REQUEST_BODY_BYTES,
  PADDING_FIELD,
  padEncodedMap,
  REQUEST_BODY_BUCKETS_BYTES,
  RESPONSE_PIECE_BUCKETS_BYTES,
} from './padding.js'

export * from './padding.js'

export const chatMessageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string().max(256 * 1024),
})
export type ChatMessage = z.infer<typeof chatMessageSchema>

export const requestBodySchema = z.object({
  messages: z.array(chatMessageSchema).min(1).max(MAX_CHAT_MESSAGES),
  maxTokens: z.number().int().min(1).max(1_000_000),
  temperature: z.number().finite().min(0).max(2),
  topP: z.number().finite().min(0).max(1).optional(),
  topK: z.number().int().min(0).max(100_000).optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .optional(),
  stop: z.array(z.string().min(1).max(256)).max(8).optional(),
  /** When the client sealed the request (ms since the epoch). */
  createdAtMs: z.number().int().min(0),
  /** A fresh random value per request. */
  nonce: z.custom<Uint8Array>((value) => value instanceof Uint8Array && value.byteLength === 16),
})
export type RequestBody = z.infer<typeof requestBodySchema>

export const finishReasonSchema = z.enum(['stop', 'length', 'cancelled'])
export type FinishReason = z.infer<typeof finishReasonSchema>

/** One sealed chunk's content: text, and on the final chunk how the generation ended. */
export const responsePieceSchema = z.object({
  text: z.string().max(64 * 1024),
  /**
   * Tokens generated so far, this piece's text included (cumulative over the answer). Lets a client that resumes an
   * answer cut short know how much of its token budget the lost part used. Absent from nodes that do not count.
   */
  outputTokens: z.number().int().min(0).optional(),
  finish: z
    .object({
      reason: finishReasonSchema,
      promptTokens: z.number().int().min(0),
      outputTokens: z.number().int().min(0),
    })
    .optional(),
})
export type ResponsePiece = z.infer<typeof responsePieceSchema>

/** The padding field as decoders accept it: any bytes (its content is ignored), absent in unpadded input. */
const paddingSchema = z.custom<Uint8Array>((value) => value instanceof Uint8Array).optional()
const paddedRequestBodySchema = requestBodySchema.extend({ [PADDING_FIELD]: paddingSchema })
const paddedResponsePieceSchema = responsePieceSchema.extend({ [PADDING_FIELD]: paddingSchema })

/**
 * Encodes a request body padded to exactly one of {@link REQUEST_BODY_BUCKETS_BYTES}: the encoded length is the
 * body's size bucket.
 * @throws {LullError} `invalid-request` when the body is too large for any bucket (longer than a sealed request
 * can carry)
 */
export function encodeRequestBody(body: RequestBody): Uint8Array {
  const encoded = encodeMsgpack(withoutPadding(body))
  const padded = padEncodedMap(encoded, REQUEST_BODY_BUCKETS_BYTES)
  if (padded === undefined) {
    throw new LullError(
      ErrorCode.InvalidRequest,
      `the request encodes to ${encoded.length} bytes, more than the ${MAX_REQUEST_BODY_BYTES} a sealed request can carry; send shorter or fewer messages`,
    )
  }
  return padded
}

/** Decodes a request body, padded or not; the padding is checked to be bytes and dropped. */
export function decodeRequestBody(bytes: Uint8Array): RequestBody {
  return withoutPadding(parseWith(paddedRequestBodySchema, decodeMsgpack(bytes), 'request body'))
}

/**
 * Encodes a response piece padded to exactly one of {@link RESPONSE_PIECE_BUCKETS_BYTES}.
 * @throws {RangeError} when the piece fits no bucket: a piece may carry at most `MAX_RESPONSE_PIECE_TEXT_CHARS` of
 * text (split longer text with `splitResponseText`)
 */
export function encodeResponsePiece(piece: ResponsePiece): Uint8Array {
  const encoded = encodeMsgpack(withoutPadding(piece))
  const padded = padEncodedMap(encoded, RESPONSE_PIECE_BUCKETS_BYTES)
  if (padded === undefined) {
    throw new RangeError(
      `encodeResponsePiece: the piece encodes to ${encoded.length} bytes, more than the largest response bucket; split its text with splitResponseText`,
    )
  }
  return padded
}

/** Decodes a response piece, padded or not; the padding is checked to be bytes and dropped. */
export function decodeResponsePiece(bytes: Uint8Array): ResponsePiece {
  return withoutPadding(parseWith(paddedResponsePieceSchema, decodeMsgpack(bytes), 'response piece'))
}

/** A copy of `value` without its padding field (callers never see padding, and never pass it in). */
function withoutPadding<T extends object>(value: T): Omit<T, typeof PADDING_FIELD> {
  const { [PADDING_FIELD]: _padding, ...rest } = value as T & { [PADDING_FIELD]?: unknown }
  return rest
}

/**
 * The associated data that binds a request's clear header to its ciphertext: a fixed-order encoding, so a
 * coordinator that alters the model, limits or candidates makes the request fail to open.
 */
export function encodeHeaderAad(header: RequestHeader): Uint8Array {
  return encodeMsgpack([
    'lull-request-header-v1',
    header.model,
    header.maxTokens,
    header.sizeBucket,
    header.candidates,
    header.priority,
    // Absent from requests without a deadline, so their encoding is unchanged.
    ...(header.timeoutMs === undefined ? [] : [header.timeoutMs]),
  ])
}
