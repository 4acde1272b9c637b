/**
 * What travels inside the ciphertext: the request body a client seals for its candidate nodes, and the pieces of
 * the answer a node seals back. The coordinator never sees these in the clear. Also the associated data that
 * binds a request's clear header to its ciphertext.
 */
import { z } from 'zod'
import { parseWith } from './codec/message-codec.js'
import { decodeMsgpack, encodeMsgpack } from './codec/msgpack.js'
import { MAX_CHAT_MESSAGES } from './constants.js'
import type { RequestHeader } from './messages.js'

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
  finish: z
    .object({
      reason: finishReasonSchema,
      promptTokens: z.number().int().min(0),
      outputTokens: z.number().int().min(0),
    })
    .optional(),
})
export type ResponsePiece = z.infer<typeof responsePieceSchema>

export function encodeRequestBody(body: RequestBody): Uint8Array {
  return encodeMsgpack(body)
}

export function decodeRequestBody(bytes: Uint8Array): RequestBody {
  return parseWith(requestBodySchema, decodeMsgpack(bytes), 'request body')
}

export function encodeResponsePiece(piece: ResponsePiece): Uint8Array {
  return encodeMsgpack(piece)
}

export function decodeResponsePiece(bytes: Uint8Array): ResponsePiece {
  return parseWith(responsePieceSchema, decodeMsgpack(bytes), 'response piece')
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
  ])
}
