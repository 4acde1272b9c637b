import { describe, expect, it } from 'vitest'
import { decodeMessage, encodeMessage } from './codec/message-codec.js'
import { MalformedMessageError } from './errors.js'
import {
  CLIENT_TO_COORDINATOR,
  COORDINATOR_TO_CLIENT,
  COORDINATOR_TO_NODE,
  NODE_TO_COORDINATOR,
  type RequestHeader,
} from './messages.js'
import {
  decodeRequestBody,
  decodeResponsePiece,
  encodeHeaderAad,
  encodeRequestBody,
  encodeResponsePiece,
} from './payload.js'

const header: RequestHeader = {
  model: 'lull-tiny',
  maxTokens: 64,
  sizeBucket: 1024,
  candidates: ['node-a', 'node-b'],
  priority: 0,
}
const sealed = {
  ciphertext: new Uint8Array([1, 2, 3]),
  keys: [{ nodeId: 'node-a', enc: new Uint8Array(32), wrappedKey: new Uint8Array(48) }],
}
const requestId = 'AAAAAAAAAAAAAAAAAAAAAA'

/** Binary (Buffer or Uint8Array) as plain arrays, so decoded and original values compare equal. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value]
  if (Array.isArray(value)) return value.map(plain)
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]))
  return value
}

describe('message schemas', () => {
  it("round-trip each direction's messages", () => {
    const cases = [
      { schema: CLIENT_TO_COORDINATOR, message: { type: 'submit', requestId, header, sealed } },
      { schema: CLIENT_TO_COORDINATOR, message: { type: 'catalogue-request' } },
      { schema: CLIENT_TO_COORDINATOR, message: { type: 'cancel', requestId } },
      { schema: COORDINATOR_TO_NODE, message: { type: 'dispatch', requestId, header, sealed } },
      { schema: COORDINATOR_TO_NODE, message: { type: 'registered', nodeId: 'node-a' } },
      { schema: NODE_TO_COORDINATOR, message: { type: 'heartbeat', busySlots: 1, state: 'serving' } },
      { schema: NODE_TO_COORDINATOR, message: { type: 'chunk', requestId, data: new Uint8Array([9]) } },
      { schema: NODE_TO_COORDINATOR, message: { type: 'end', requestId, usage: { promptTokens: 3, outputTokens: 4 } } },
      { schema: COORDINATOR_TO_CLIENT, message: { type: 'error', requestId, code: 'no-capacity', message: 'busy' } },
      { schema: COORDINATOR_TO_CLIENT, message: { type: 'dispatched', requestId, nodeId: 'node-a' } },
    ] as const
    for (const { schema, message } of cases) {
      const decoded = decodeMessage(encodeMessage(message as never), schema)
      expect(plain(decoded)).toEqual(plain(message))
    }
  })

  it('refuses a message meant for another direction', () => {
    const dispatch = encodeMessage({ type: 'dispatch', requestId, header, sealed })
    expect(() => decodeMessage(dispatch, CLIENT_TO_COORDINATOR)).toThrow(MalformedMessageError)
  })

  it('names the offending field', () => {
    const bad = encodeMessage({ type: 'submit', requestId, header: { ...header, maxTokens: -1 }, sealed } as never)
    expect(() => decodeMessage(bad, CLIENT_TO_COORDINATOR)).toThrow(/header\.maxTokens/)
  })

  it('refuses unknown error codes and over-long request ids', () => {
    expect(() =>
      decodeMessage(encodeMessage({ type: 'error', code: 'boom', message: '' } as never), COORDINATOR_TO_CLIENT),
    ).toThrow(MalformedMessageError)
    expect(() =>
      decodeMessage(encodeMessage({ type: 'cancel', requestId: 'x'.repeat(65) }), CLIENT_TO_COORDINATOR),
    ).toThrow(MalformedMessageError)
  })
})

describe('sealed payloads', () => {
  it('round-trip a request body and a response piece', () => {
    const body = {
      messages: [{ role: 'user' as const, content: 'hello' }],
      maxTokens: 8,
      temperature: 0.5,
      seed: 1,
      createdAtMs: 1,
      nonce: new Uint8Array(16),
    }
    expect(decodeRequestBody(encodeRequestBody(body)).messages).toEqual(body.messages)
    const piece = { text: 'hi', finish: { reason: 'stop' as const, promptTokens: 1, outputTokens: 2 } }
    expect(decodeResponsePiece(encodeResponsePiece(piece))).toEqual(piece)
  })

  it('binds every header field into the associated data', () => {
    const base = encodeHeaderAad(header)
    const variants: RequestHeader[] = [
      { ...header, model: 'other' },
      { ...header, maxTokens: 65 },
      { ...header, sizeBucket: 2048 },
      { ...header, candidates: ['node-a'] },
      { ...header, priority: 1 },
    ]
    for (const variant of variants) expect(encodeHeaderAad(variant)).not.toEqual(base)
    expect(encodeHeaderAad({ ...header })).toEqual(base)
  })
})
