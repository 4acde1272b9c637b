import { Packr } from 'msgpackr'
import { MalformedMessageError } from '../errors.js'
import { assertWellFormedMsgpack } from './msgpack-guard.js'

/**
 * Standard msgpack, as every Lull peer writes it: no record extension (`useRecords: false`), maps decode to plain
 * objects, binary decodes to `Uint8Array`s (Node `Buffer`s).
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false })

export function encodeMsgpack(value: unknown): Uint8Array {
  return packr.pack(value)
}

/**
 * Decodes untrusted msgpack. The bytes are checked for well-formedness first (declared lengths, nesting depth),
 * so a hostile length header cannot make the decoder allocate or recurse without bound.
 * @throws {MalformedMessageError} when the bytes are not one well-formed msgpack value
 */
export function decodeMsgpack(bytes: Uint8Array): unknown {
  assertWellFormedMsgpack(bytes)
  try {
    return packr.unpack(bytes)
  } catch (error) {
    throw new MalformedMessageError('msgpack decoding failed', { cause: error })
  }
}
