/**
 * Property-based fuzzing of what opens or verifies data from the network: node certificates
 * (`verifyNodeCertificate` must resolve `false` for anything invalid and never throw), sealed requests
 * (`openRequest` must refuse anything but the exact sealed bytes with a typed error), and sealed response streams
 * (`ResponseOpener.open` must refuse any chunk that is not the authentic next one with a typed error).
 * Runs are seeded; identity and HPKE keys come from fixed seeds.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { decodeMessage, encodeMessage } from '../codec/message-codec.js'
import { x25519PublicKey } from '../crypto/keys.js'
import {
  type NodeCertificate,
  type NodeCertificateFields,
  signNodeCertificate,
  verifyNodeCertificate,
} from '../crypto/node-certificate.js'
import { openRequest, type SealedRequest, sealRequest } from '../crypto/request-envelope.js'
import { ResponseOpener, ResponseSealer } from '../crypto/response-stream.js'
import {
  DecryptionError,
  LullError,
  MalformedMessageError,
  NotARecipientError,
  StreamTruncatedError,
} from '../errors.js'
import { NODE_TO_COORDINATOR, type RegisterMessage } from '../messages.js'

const SEED = 0x5ea1
const NOW = 1_767_225_600_000
const HOUR = 3_600_000

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'then', 'version', 'nodeId', 'signature']
/** Anything JavaScript can hold: null prototypes, boxed values, maps, typed arrays, sparse arrays, bigints, dates. */
const anything = fc.anything({
  maxDepth: 3,
  maxKeys: 8,
  key: fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 10 })),
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withNullPrototype: true,
  withObjectString: true,
  withSet: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
})

/** Objects that throw from every trap: a caller's value can be hostile in ways msgpack never produces. */
function trapEverything(): object {
  const boom = (): never => {
    throw new TypeError('trap')
  }
  return new Proxy({}, { get: boom, has: boom, ownKeys: boom, getPrototypeOf: boom, getOwnPropertyDescriptor: boom })
}

// ---------------------------------------------------------------------------------------------------------------

describe('verifyNodeCertificate on hostile values', () => {
  let identityKey: PrivateKey
  let certificate: NodeCertificate

  beforeAll(async () => {
    identityKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(3))
    const fields: NodeCertificateFields = {
      nodeId: peerIdFromPrivateKey(identityKey).toString(),
      hpkePublicKey: x25519PublicKey(new Uint8Array(32).fill(9)),
      modelId: 'lull-tiny',
      modelDigest: 'a'.repeat(64),
      hardware: {
        os: 'linux',
        arch: 'x64',
        cpuModel: 'test cpu',
        cpuCores: 4,
        ramTotalBytes: 2 ** 34,
        gpu: 'none',
        vramTotalBytes: 0,
      },
      notBeforeMs: NOW - HOUR,
      notAfterMs: NOW + HOUR,
    }
    certificate = await signNodeCertificate(fields, identityKey)
    expect(await verifyNodeCertificate(certificate, { nowMs: NOW })).toBe(true)
  })

  async function verifyTyped(value: unknown, options: unknown = { nowMs: NOW }): Promise<boolean> {
    const result = await verifyNodeCertificate(value, options as { nowMs: number })
    expect(typeof result).toBe('boolean')
    return result
  }

  it('resolves false for arbitrary values and arbitrary options, never throwing', async () => {
    await fc.assert(
      fc.asyncProperty(anything, anything, async (value, options) => {
        expect(await verifyTyped(value)).toBe(false)
        await verifyTyped(certificate, options)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('resolves false for values that throw from every property access', async () => {
    expect(await verifyTyped(trapEverything())).toBe(false)
    expect(await verifyTyped({ ...certificate, hardware: trapEverything() })).toBe(false)
    expect(await verifyTyped(certificate, trapEverything())).toBe(false)
    const getter = { ...certificate }
    Object.defineProperty(getter, 'signature', {
      enumerable: true,
      get() {
        throw new RangeError('getter')
      },
    })
    expect(await verifyTyped(getter)).toBe(false)
  })

  it('resolves false when any field of a valid certificate is replaced, removed or doubled', async () => {
    const fieldPath = fc.constantFrom(
      ['version'],
      ['nodeId'],
      ['hpkePublicKey'],
      ['modelId'],
      ['modelDigest'],
      ['hardware'],
      ['hardware', 'os'],
      ['hardware', 'cpuCores'],
      ['hardware', 'ramTotalBytes'],
      ['hardware', 'gpu'],
      ['notBeforeMs'],
      ['notAfterMs'],
      ['signature'],
    )
    const replacement = fc.oneof(
      anything,
      fc.constantFrom(NaN, Infinity, -1, 2 ** 53, 2n ** 64n, '', 'x'.repeat(300), '\ud800', new Uint8Array(64)),
    )
    await fc.assert(
      fc.asyncProperty(
        fieldPath,
        replacement,
        fc.constantFrom('replace', 'delete', 'extra'),
        async (path, value, op) => {
          const mutated = structuredClone(certificate) as unknown as Record<string, unknown>
          const parent = (path.length === 2 ? mutated.hardware : mutated) as Record<string, unknown>
          const name = path[path.length - 1] as string
          const original = parent[name]
          if (op === 'replace') parent[name] = value
          else if (op === 'delete') delete parent[name]
          else Object.defineProperty(parent, `${name}2`, { value, enumerable: true })
          const unchanged = op === 'replace' && equalValues(original, value)
          expect(await verifyTyped(mutated)).toBe(unchanged)
        },
      ),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('resolves false when any bit of the signature, key or digest flips, or the validity window does not cover now', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('signature', 'hpkePublicKey', 'modelDigest', 'nodeId'),
        fc.nat(),
        fc.integer({ min: -10 * HOUR, max: 10 * HOUR }),
        async (field, bit, skew) => {
          const mutated = structuredClone(certificate) as unknown as Record<string, unknown>
          const current = mutated[field]
          if (current instanceof Uint8Array) {
            current[(bit >> 3) % current.length] = (current[(bit >> 3) % current.length] as number) ^ (1 << (bit & 7))
          } else {
            const text = current as string
            const at = bit % text.length
            mutated[field] = `${text.slice(0, at)}${text[at] === 'b' ? 'c' : 'b'}${text.slice(at + 1)}`
          }
          expect(await verifyTyped(mutated)).toBe(false)
          const nowMs = NOW + skew
          const inWindow = nowMs >= certificate.notBeforeMs && nowMs < certificate.notAfterMs
          expect(await verifyTyped(certificate, { nowMs })).toBe(inWindow)
        },
      ),
      { seed: SEED, numRuns: 100 },
    )
  })

  it('resolves false for a certificate that went through the wire and was altered on the way', async () => {
    const register: RegisterMessage = {
      type: 'register',
      certificate,
      slots: 2,
      benchmark: { prefillTokensPerSecond: 10, decodeTokensPerSecond: 10 },
      agent: 'fuzz',
    }
    const bytes = encodeMessage(register)
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 1, max: 255 }), async (at, change) => {
        const mutated = Uint8Array.from(bytes)
        mutated[at % mutated.length] = (mutated[at % mutated.length] as number) ^ change
        let decoded: RegisterMessage
        try {
          decoded = decodeMessage(mutated, NODE_TO_COORDINATOR) as RegisterMessage
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedMessageError)
          return
        }
        if (decoded.type !== 'register') return
        const valid = await verifyTyped(decoded.certificate)
        // Only a change outside the signed fields (slots, benchmark, agent) may leave the certificate valid.
        if (valid) expect(sameCertificate(decoded.certificate, certificate)).toBe(true)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })
})

// ---------------------------------------------------------------------------------------------------------------

describe('openRequest on arbitrary and mutated sealed requests', () => {
  const me = { nodeId: 'node-me', secretKey: new Uint8Array(32).fill(21) }
  const other = { nodeId: 'node-other', secretKey: new Uint8Array(32).fill(42) }
  const aad = new TextEncoder().encode('clear header')
  const body = new TextEncoder().encode('the sealed request body')
  let sealed: SealedRequest

  beforeAll(async () => {
    ;({ sealed } = await sealRequest(
      body,
      [
        { nodeId: other.nodeId, publicKey: x25519PublicKey(other.secretKey) },
        { nodeId: me.nodeId, publicKey: x25519PublicKey(me.secretKey) },
      ],
      aad,
    ))
    expect((await openRequest(sealed, me.nodeId, me.secretKey, aad)).body).toEqual(body)
  })

  /** Resolves with the body, or rejects with a typed error; anything else fails. */
  async function openTyped(
    value: unknown,
    withAad: Uint8Array = aad,
  ): Promise<{ body?: Uint8Array; error?: LullError }> {
    try {
      return { body: (await openRequest(value as SealedRequest, me.nodeId, me.secretKey, withAad)).body }
    } catch (error) {
      if (!(error instanceof LullError)) {
        throw new Error(
          `openRequest threw an untyped ${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`,
        )
      }
      expect([DecryptionError, NotARecipientError, MalformedMessageError].some((type) => error instanceof type)).toBe(
        true,
      )
      return { error }
    }
  }

  it('refuses arbitrary values with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(anything, async (value) => {
        expect((await openTyped(value)).error).toBeInstanceOf(LullError)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('refuses arbitrary sealed-request-shaped values (our node id present) with a typed error', async () => {
    const shaped = fc.record({
      ciphertext: fc.oneof(fc.uint8Array({ maxLength: 200 }), anything),
      keys: fc.array(
        fc.record({
          nodeId: fc.constantFrom(me.nodeId, other.nodeId, ''),
          enc: fc.oneof(fc.uint8Array({ minLength: 31, maxLength: 33 }), fc.constant(new Uint8Array(32)), anything),
          wrappedKey: fc.oneof(fc.uint8Array({ maxLength: 80 }), anything),
        }),
        { maxLength: 4 },
      ),
    })
    await fc.assert(
      fc.asyncProperty(shaped, async (value) => {
        expect((await openTyped(value)).error).toBeInstanceOf(LullError)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('refuses the real sealed request with any bit flipped, truncated, extended, or under another header', async () => {
    const part = fc.constantFrom('ciphertext', 'enc', 'wrappedKey', 'aad')
    const op = fc.constantFrom('flip', 'truncate', 'extend')
    await fc.assert(
      fc.asyncProperty(part, op, fc.nat(), async (where, how, at) => {
        const copy = structuredClone(sealed)
        const mine = copy.keys.find((key) => key.nodeId === me.nodeId) as SealedRequest['keys'][number]
        const target = where === 'ciphertext' ? copy.ciphertext : where === 'aad' ? aad : mine[where]
        const changed = change(target, how, at)
        if (where === 'ciphertext') copy.ciphertext = changed
        else if (where === 'enc' || where === 'wrappedKey') mine[where] = changed
        const outcome = await openTyped(copy, where === 'aad' ? changed : aad)
        expect(outcome.error).toBeInstanceOf(DecryptionError)
      }),
      { seed: SEED, numRuns: 150 },
    )
  })

  it('refuses a request whose key for this node was removed, renamed or shuffled behind a bogus one', async () => {
    const copy = structuredClone(sealed)
    expect(
      (await openTyped({ ...copy, keys: copy.keys.filter((key) => key.nodeId !== me.nodeId) })).error,
    ).toBeInstanceOf(NotARecipientError)
    expect(
      (await openTyped({ ...copy, keys: copy.keys.map((key) => ({ ...key, nodeId: `${key.nodeId}x` })) })).error,
    ).toBeInstanceOf(NotARecipientError)
    const bogus = { nodeId: me.nodeId, enc: new Uint8Array(32), wrappedKey: new Uint8Array(48) }
    expect((await openTyped({ ...copy, keys: [bogus, ...copy.keys] })).error).toBeInstanceOf(DecryptionError)
    // Reordering the genuine keys changes nothing that is authenticated.
    expect((await openTyped({ ...copy, keys: [...copy.keys].reverse() })).body).toEqual(body)
  })
})

// ---------------------------------------------------------------------------------------------------------------

describe('ResponseOpener on arbitrary and mutated chunks', () => {
  const contentKey = new Uint8Array(32).fill(77)
  const texts = ['first', 'second', '', 'fourth and last']

  function sealStream(): Uint8Array[] {
    const sealer = new ResponseSealer(contentKey)
    return texts.map((text, index) => sealer.seal(new TextEncoder().encode(text), index === texts.length - 1))
  }

  /** Opens chunks in order; returns the texts opened before the first failure and that failure (typed, or fails). */
  function openAll(chunks: unknown[]): { opened: string[]; error?: LullError; finished: boolean } {
    const opener = new ResponseOpener(contentKey)
    const opened: string[] = []
    for (const chunk of chunks) {
      try {
        opened.push(new TextDecoder().decode(opener.open(chunk as Uint8Array).plaintext))
      } catch (error) {
        if (!(error instanceof LullError)) throw new Error(`open threw an untyped ${(error as Error)?.name}`)
        expect(error).toBeInstanceOf(DecryptionError)
        // After a failure the opener is spent.
        expect(() => opener.open(chunks[0] as Uint8Array)).toThrow(DecryptionError)
        return { opened, error, finished: false }
      }
    }
    if (!opener.finished) {
      expect(() => opener.finish()).toThrow(StreamTruncatedError)
      return { opened, finished: false }
    }
    return { opened, finished: true }
  }

  it('opens the genuine stream', () => {
    expect(openAll(sealStream())).toEqual({ opened: texts, finished: true })
  })

  it('refuses arbitrary chunks and values with DecryptionError', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 120 }), anything), { minLength: 1, maxLength: 4 }),
        (chunks) => {
          const outcome = openAll(chunks)
          expect(outcome.error).toBeInstanceOf(DecryptionError)
          expect(outcome.opened).toEqual([])
        },
      ),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('never yields text out of order, altered, duplicated or after the end: each mutation fails typed', () => {
    const mutation = fc.record({
      op: fc.constantFrom('flip', 'truncate', 'extend', 'drop', 'duplicate', 'swap', 'append-garbage', 'replay-final'),
      index: fc.nat(),
      other: fc.nat(),
      at: fc.nat(),
    })
    fc.assert(
      fc.property(mutation, ({ op, index, other, at }) => {
        const chunks = sealStream()
        const i = index % chunks.length
        const j = other % chunks.length
        const chunk = chunks[i] as Uint8Array
        switch (op) {
          case 'flip':
            chunks[i] = change(chunk, 'flip', at)
            break
          case 'truncate':
          case 'extend':
            chunks[i] = change(chunk, op, at)
            break
          case 'drop':
            chunks.splice(i, 1)
            break
          case 'duplicate':
            chunks.splice(i, 0, chunk)
            break
          case 'swap':
            if (i === j) return
            chunks[i] = chunks[j] as Uint8Array
            chunks[j] = chunk
            break
          case 'append-garbage':
            chunks.push(change(chunk, 'flip', at))
            break
          case 'replay-final':
            chunks.push(chunks[chunks.length - 1] as Uint8Array)
            break
        }
        const outcome = openAll(chunks)
        expect(outcome.finished).toBe(false)
        // Whatever was opened before the failure is a prefix of the genuine answer.
        expect(texts.slice(0, outcome.opened.length)).toEqual(outcome.opened)
      }),
      { seed: SEED, numRuns: 200 },
    )
  })
})

// ---------------------------------------------------------------------------------------------------------------

/** A copy of `bytes` with one bit flipped, cut short, or grown by a byte (at a position derived from `at`). */
function change(bytes: Uint8Array, how: 'flip' | 'truncate' | 'extend', at: number): Uint8Array {
  if (how === 'truncate') return bytes.slice(0, at % bytes.length)
  if (how === 'extend') {
    const out = new Uint8Array(bytes.length + 1)
    out.set(bytes)
    out[bytes.length] = at & 0xff
    return out
  }
  const out = Uint8Array.from(bytes)
  const bit = at % (bytes.length * 8)
  out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7))
  return out
}

function equalValues(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array)
    return a.length === b.length && a.every((byte, i) => byte === b[i])
  return Object.is(a, b)
}

function sameCertificate(a: NodeCertificate, b: NodeCertificate): boolean {
  const plain = (value: unknown): unknown =>
    JSON.stringify(value, (_key, item) => (item instanceof Uint8Array ? [...item] : item))
  return plain(a) === plain(b)
}
