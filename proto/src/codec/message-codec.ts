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

/**
 * Parse context that makes zod stop at the first problem instead of collecting every one. zod sets `abortEarly`
 * itself only in `validate()`, which returns no data; `safeParse` passes its context through, so this works there
 * too (the fuzz suite checks that it still does). Without it, a hostile 1 MiB catalogue of a million empty node
 * entries took zod about 6 s to reject (16.5 million issues); with it, a few ms.
 */
const STOP_AT_FIRST_ISSUE = { abortEarly: true } as z.core.ParseContext<z.core.$ZodIssue>

/**
 * Checks an already-decoded value against `schema`, turning failure into a {@link MalformedMessageError} that names
 * the first problem found.
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(value, STOP_AT_FIRST_ISSUE)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const where = issue?.path.length ? ` at ${issue.path.join('.')}` : ''
  throw new MalformedMessageError(`invalid ${what}${where}: ${issue?.message ?? 'failed validation'}`)
}
