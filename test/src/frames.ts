import { decodeMessage } from '@lull/proto'

/**
 * The message in a frame if the frame is one of `schema`'s, else undefined: a coordinator's frame observer sees the
 * frames of every peer (nodes, clients, admins) and a test usually wants one kind.
 */
export function messageOf<S extends Parameters<typeof decodeMessage>[1]>(
  payload: Uint8Array,
  schema: S,
): ReturnType<typeof decodeMessage<S>> | undefined {
  try {
    return decodeMessage(payload, schema)
  } catch {
    return undefined
  }
}
