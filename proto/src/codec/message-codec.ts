import type { z } from 'zod'
import { MalformedMessageError } from '../errors.js'
import type { AnyMessage } from '../messages.js'
import { decodeMsgpack, encodeMsgpack } from './msgpack.js'

/** Encodes a message as msgpack (the frame's payload). */
export function encodeMessage(message: AnyMessage): Uint8Array {
  return encodeMsgpack(message)
}

/**
 * Decodes one frame's payload and checks it against `schema`.
 * @throws {MalformedMessageError} naming the first problem found
 */
export function decodeMessage<S extends z.ZodType>(payload: Uint8Array, schema: S): z.infer<S> {
  return parseWith(schema, decodeMsgpack(payload), 'message')
}

/** Checks an already-decoded value against `schema`, turning failure into a {@link MalformedMessageError}. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const where = issue?.path.length ? ` at ${issue.path.join('.')}` : ''
  throw new MalformedMessageError(`invalid ${what}${where}: ${issue?.message ?? 'failed validation'}`)
}
