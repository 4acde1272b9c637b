import { MAX_MESSAGE_CONTAINERS, MAX_MESSAGE_DEPTH } from '../constants.js'
import { MalformedMessageError } from '../errors.js'

/**
 * Walks msgpack bytes without building anything and throws {@link MalformedMessageError} unless they hold exactly
 * one value whose every declared length fits in the bytes that follow, whose nesting stays within `maxDepth` and
 * which holds at most `maxContainers` arrays and maps. Run before msgpackr sees untrusted bytes: a 5-byte `array32`
 * header would otherwise make the decoder allocate an array of four billion slots, deep nesting would exhaust the
 * stack, and a frame of a million empty containers would cost the decoder a million allocations. Extension types
 * are refused: Lull's messages use none. Linear in the length of `bytes`; never allocates more than the nesting
 * stack.
 */
export function assertWellFormedMsgpack(
  bytes: Uint8Array,
  maxDepth = MAX_MESSAGE_DEPTH,
  maxContainers = MAX_MESSAGE_CONTAINERS,
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const end = bytes.byteLength
  let offset = 0
  // Items still to read in each open container, innermost last.
  const pending: number[] = []
  let containers = 0

  const fail = (what: string): never => {
    throw new MalformedMessageError(`malformed msgpack at byte ${offset}: ${what}`)
  }
  const need = (count: number): void => {
    if (count > end - offset) fail(`declares ${count} bytes but ${end - offset} remain`)
  }
  const skip = (count: number): void => {
    need(count)
    offset += count
  }
  const openContainer = (items: number): void => {
    if (++containers > maxContainers) fail(`holds more than ${maxContainers} arrays and maps`)
    // Every item takes at least one byte, so a count larger than what remains is a lie.
    if (items > end - offset) fail(`declares ${items} items but ${end - offset} bytes remain`)
    if (items === 0) return
    if (pending.length >= maxDepth) fail(`nested deeper than ${maxDepth}`)
    pending.push(items)
  }

  do {
    // This value is one of the items of the innermost open container.
    const top = pending.length - 1
    if (top >= 0) pending[top] = (pending[top] as number) - 1
    if (offset >= end) fail('ends in the middle of a value')
    const byte = bytes[offset++] as number
    if (byte <= 0x7f || byte >= 0xe0 || byte === 0xc0 || byte === 0xc2 || byte === 0xc3) {
      // fixint, nil, booleans: nothing follows
    } else if (byte <= 0x8f) openContainer((byte & 0x0f) * 2)
    else if (byte <= 0x9f) openContainer(byte & 0x0f)
    else if (byte <= 0xbf) skip(byte & 0x1f)
    else {
      switch (byte) {
        case 0xc4:
        case 0xd9:
          need(1)
          skip(view.getUint8(offset++))
          break
        case 0xc5:
        case 0xda:
          need(2)
          offset += 2
          skip(view.getUint16(offset - 2))
          break
        case 0xc6:
        case 0xdb:
          need(4)
          offset += 4
          skip(view.getUint32(offset - 4))
          break
        case 0xca:
          skip(4)
          break
        case 0xcb:
          skip(8)
          break
        case 0xcc:
        case 0xd0:
          skip(1)
          break
        case 0xcd:
        case 0xd1:
          skip(2)
          break
        case 0xce:
        case 0xd2:
          skip(4)
          break
        case 0xcf:
        case 0xd3:
          skip(8)
          break
        case 0xdc:
          need(2)
          offset += 2
          openContainer(view.getUint16(offset - 2))
          break
        case 0xdd:
          need(4)
          offset += 4
          openContainer(view.getUint32(offset - 4))
          break
        case 0xde:
          need(2)
          offset += 2
          openContainer(view.getUint16(offset - 2) * 2)
          break
        case 0xdf:
          need(4)
          offset += 4
          openContainer(view.getUint32(offset - 4) * 2)
          break
        default:
          fail(`type byte 0x${byte.toString(16)} is not accepted (extension types and 0xc1 are refused)`)
      }
    }
    // Close every container whose last item has now been read.
    while (pending.length > 0 && pending[pending.length - 1] === 0) pending.pop()
  } while (pending.length > 0)

  if (offset !== end) fail(`${end - offset} bytes follow the value`)
}
