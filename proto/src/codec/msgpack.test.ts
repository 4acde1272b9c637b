import { describe, expect, it } from 'vitest'
import { MalformedMessageError } from '../errors.js'
import { decodeMsgpack, encodeMsgpack } from './msgpack.js'
import { assertWellFormedMsgpack } from './msgpack-guard.js'

describe('decodeMsgpack', () => {
  it('round-trips the values Lull messages are made of', () => {
    const value = {
      type: 'submit',
      n: [0, -1, 127, 128, -33, 65_536, 2 ** 40, 1.5],
      s: 'x'.repeat(300),
      b: new Uint8Array([1, 2, 3]),
      nested: { a: [[], {}, [null, true, false]] },
    }
    const decoded = decodeMsgpack(encodeMsgpack(value)) as typeof value
    expect(decoded.n).toEqual(value.n)
    expect(decoded.s).toBe(value.s)
    expect(new Uint8Array(decoded.b)).toEqual(value.b)
    expect(decoded.nested).toEqual(value.nested)
  })

  it('refuses an array32 header that claims four billion items, without allocating', () => {
    const bomb = Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff])
    expect(() => decodeMsgpack(bomb)).toThrow(MalformedMessageError)
  })

  it('refuses map32 and str32 headers longer than the bytes that follow', () => {
    expect(() => decodeMsgpack(Uint8Array.from([0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0]))).toThrow(MalformedMessageError)
    expect(() => decodeMsgpack(Uint8Array.from([0xdb, 0x00, 0x10, 0x00, 0x00, 0x61]))).toThrow(MalformedMessageError)
  })

  it('refuses nesting deeper than the limit', () => {
    const deep = new Uint8Array(10_000).fill(0x91)
    deep[deep.length - 1] = 0xc0
    expect(() => decodeMsgpack(deep)).toThrow(/nested deeper/)
  })

  it('accepts nesting up to the limit', () => {
    const bytes = Uint8Array.from([0x91, 0x91, 0x91, 0xc0])
    expect(() => assertWellFormedMsgpack(bytes, 3)).not.toThrow()
    expect(() => assertWellFormedMsgpack(bytes, 2)).toThrow(MalformedMessageError)
  })

  it('refuses truncated values, trailing bytes, extension types and empty input', () => {
    const good = encodeMsgpack({ a: [1, 2, 'three'] })
    for (let cut = 0; cut < good.length; cut++) {
      expect(() => decodeMsgpack(good.subarray(0, cut))).toThrow(MalformedMessageError)
    }
    expect(() => decodeMsgpack(Uint8Array.from([...good, 0xc0]))).toThrow(/follow the value/)
    expect(() => decodeMsgpack(Uint8Array.from([0xd4, 0x01, 0x00]))).toThrow(/not accepted/)
    expect(() => decodeMsgpack(Uint8Array.from([0xc1]))).toThrow(/not accepted/)
  })

  it('does not let a __proto__ key change an object prototype', () => {
    const bytes = encodeMsgpack(JSON.parse('{"__proto__": {"polluted": true}, "a": 1}'))
    const decoded = decodeMsgpack(bytes) as Record<string, unknown>
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
