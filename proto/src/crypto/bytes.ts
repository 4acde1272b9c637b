/**
 * Small byte helpers shared by the crypto modules. Argument checks throw labelled `TypeError` / `RangeError`:
 * they report programming mistakes, not hostile input (hostile input gets a typed {@link LullError} or `false`).
 */

/** True for any `Uint8Array`, including Node `Buffer`s and views into larger buffers. */
export function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array
}

/** Throws a labelled error unless `value` is a `Uint8Array` (of `length` bytes when given). */
export function assertBytes(value: unknown, label: string, length?: number): asserts value is Uint8Array {
  if (!isBytes(value)) throw new TypeError(`${label} must be a Uint8Array, got ${describe(value)}`)
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${label} must be ${length} bytes, got ${value.length}`)
  }
}

/** Throws a labelled error unless `value` is a non-empty string. */
export function assertNonEmptyString(value: unknown, label: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${label} must be a non-empty string, got ${describe(value)}`)
  }
}

/** Concatenates byte arrays into a fresh array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** Constant-time (for equal lengths) byte comparison. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

const encoder = new TextEncoder()
/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text)
}

/** A short description of a value for error messages; never includes the value's contents. */
function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (isBytes(value)) return `${value.length} bytes`
  return typeof value
}
