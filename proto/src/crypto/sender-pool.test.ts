import { describe, expect, it } from 'vitest'
import { hpkeOpen } from './hpke.js'
import { generateX25519KeyPair } from './keys.js'
import { createRequestSenderPool, openRequest, REQUEST_HPKE_INFO, sealRequest } from './request-envelope.js'
import { HpkeSenderPool } from './sender-pool.js'

const utf8 = (text: string) => new TextEncoder().encode(text)
const info = utf8('pool test v1')
const aad = utf8('header')
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

describe('HpkeSenderPool', () => {
  it('hands out contexts the recipient opens, prepared ones included', async () => {
    const recipient = generateX25519KeyPair()
    const pool = new HpkeSenderPool(info)
    const fresh = await pool.take(recipient.publicKey)
    expect(pool.readyCount).toBe(0)
    await pool.refill()
    expect(pool.readyCount).toBe(1)
    const prepared = await pool.take(recipient.publicKey)
    expect(pool.readyCount).toBe(0)
    for (const sender of [fresh, prepared]) {
      const ciphertext = await sender.seal(utf8('content key'), aad)
      expect(await hpkeOpen(recipient.secretKey, sender.enc, ciphertext, { info, aad })).toEqual(utf8('content key'))
    }
  })

  it('never hands out a context twice: every take has its own ephemeral key', async () => {
    const recipient = generateX25519KeyPair()
    const pool = new HpkeSenderPool(info)
    const encs = new Set<string>()
    for (let round = 0; round < 5; round++) {
      const [one, two] = await Promise.all([pool.take(recipient.publicKey), pool.take(recipient.publicKey)])
      encs.add(hex(one.enc)).add(hex(two.enc))
      await pool.refill()
      await pool.refill() // a second refill adds nothing: one prepared context per key
      expect(pool.readyCount).toBe(1)
    }
    expect(encs.size).toBe(10)
  })

  it('prepares for the most recently used keys only, up to maxKeys', async () => {
    const keys = Array.from({ length: 5 }, () => generateX25519KeyPair().publicKey)
    const pool = new HpkeSenderPool(info, { maxKeys: 3 })
    for (const key of keys) await pool.take(key)
    await pool.refill()
    expect(pool.readyCount).toBe(3)
    // Using an old key again makes it recent and pushes out the least recently used.
    await pool.take(keys[0] as Uint8Array)
    await pool.refill()
    expect(pool.readyCount).toBe(3)
    pool.clear()
    expect(pool.readyCount).toBe(0)
    await pool.refill()
    expect(pool.readyCount).toBe(0)
  })

  it('refuses an unusable key as a fresh setup does, and forgets it', async () => {
    const pool = new HpkeSenderPool(info)
    const lowOrder = new Uint8Array(32) // the all-zero point: X25519 gives an all-zero shared secret
    await expect(pool.take(lowOrder)).rejects.toThrow(RangeError)
    await pool.refill()
    expect(pool.readyCount).toBe(0)
    expect(() => pool.take(new Uint8Array(31))).toThrow(RangeError)
    expect(() => new HpkeSenderPool(info, { maxKeys: 0 })).toThrow(RangeError)
  })
})

describe('sealRequest with a sender pool', () => {
  const nodes = ['node-a', 'node-b', 'node-c'].map((nodeId) => ({ nodeId, ...generateX25519KeyPair() }))
  const recipients = nodes.map(({ nodeId, publicKey }) => ({ nodeId, publicKey }))
  const body = utf8('{"messages":[]}')

  it('seals with prepared contexts that every candidate opens, a different ephemeral key each time', async () => {
    const senders = createRequestSenderPool()
    const encs = new Set<string>()
    for (let round = 0; round < 3; round++) {
      const { sealed, contentKey } = await sealRequest(body, recipients, aad, { senders })
      if (round > 0) expect(senders.readyCount).toBe(0) // the prepared ones were used
      for (const key of sealed.keys) encs.add(hex(key.enc))
      for (const node of nodes) {
        const opened = await openRequest(sealed, node.nodeId, node.secretKey, aad)
        expect(opened.body).toEqual(body)
        expect(opened.contentKey).toEqual(contentKey)
      }
      await senders.refill()
      expect(senders.readyCount).toBe(3)
    }
    expect(encs.size).toBe(9)
  })

  it('refuses a pool set up for another HPKE info', async () => {
    const other = new HpkeSenderPool(utf8(`${REQUEST_HPKE_INFO} but not quite`))
    await expect(sealRequest(body, recipients, aad, { senders: other })).rejects.toThrow(/createRequestSenderPool/)
  })
})
