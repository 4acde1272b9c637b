import { readFileSync } from 'node:fs'
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ed25519 } from '@noble/curves/ed25519.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { Packr } from 'msgpackr'
import { beforeAll, describe, expect, it } from 'vitest'
import type { HardwareSummary } from '../hardware.js'
import { generateX25519KeyPair } from './keys.js'
import {
  isNodeCertificate,
  type NodeCertificate,
  type NodeCertificateFields,
  nodeCertificateSigningBytes,
  signNodeCertificate,
  verifyNodeCertificate,
} from './node-certificate.js'

const HOUR = 3_600_000
const NOW = 1_767_225_600_000
const DIGEST = 'a'.repeat(64)
const hardware: HardwareSummary = {
  os: 'linux',
  arch: 'x64',
  cpuModel: 'AMD Ryzen 9 7950X 16-Core Processor',
  cpuCores: 16,
  ramTotalBytes: 64 * 2 ** 30,
  gpu: 'cuda',
  vramTotalBytes: 24 * 2 ** 30,
}
const packr = new Packr({ useRecords: false })

let identityKey: PrivateKey
let nodeId: string
let fields: NodeCertificateFields
let certificate: NodeCertificate
const verifyNow = (cert: unknown) => verifyNodeCertificate(cert, { nowMs: NOW })

beforeAll(async () => {
  identityKey = await generateKeyPair('Ed25519')
  nodeId = peerIdFromPrivateKey(identityKey).toString()
  fields = {
    nodeId,
    hpkePublicKey: generateX25519KeyPair().publicKey,
    modelId: 'lull-tiny',
    modelDigest: DIGEST,
    hardware,
    notBeforeMs: NOW - HOUR,
    notAfterMs: NOW + 23 * HOUR,
  }
  certificate = await signNodeCertificate(fields, identityKey)
})

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes)
  copy[bit >> 3]! ^= 1 << (bit & 7)
  return copy
}

describe('signNodeCertificate / verifyNodeCertificate', () => {
  it('signs a certificate that verifies', async () => {
    expect(certificate.version).toBe(1)
    expect(certificate.signature).toHaveLength(64)
    expect(certificate.nodeId).toBe(nodeId)
    expect(await verifyNow(certificate)).toBe(true)
    expect(
      await verifyNodeCertificate(certificate, { nowMs: NOW, nodeId, modelId: 'lull-tiny', modelDigest: DIGEST }),
    ).toBe(true)
    expect(isNodeCertificate(certificate)).toBe(true)
  })

  it('verifies after a msgpack round trip (Buffers, plain objects)', async () => {
    const decoded = packr.unpack(packr.pack(certificate))
    expect(Buffer.isBuffer(decoded.signature)).toBe(true)
    expect(await verifyNow(decoded)).toBe(true)
    expect(await verifyNow({ __proto__: null, ...certificate })).toBe(true)
  })

  it('keeps a detached copy: changing the input fields later does not change the certificate', async () => {
    const input = { ...fields, hpkePublicKey: Uint8Array.from(fields.hpkePublicKey), hardware: { ...hardware } }
    const cert = await signNodeCertificate(input, identityKey)
    input.hpkePublicKey[0]! ^= 1
    input.hardware.cpuCores = 1
    expect(await verifyNow(cert)).toBe(true)
  })

  it('leaves extra hardware properties out of what it signs', async () => {
    const cert = await signNodeCertificate(
      { ...fields, hardware: { ...hardware, benchmark: 12 } as HardwareSummary },
      identityKey,
    )
    expect(Object.keys(cert.hardware)).not.toContain('benchmark')
    expect(await verifyNow(cert)).toBe(true)
  })

  it('checks the validity window: notBefore inclusive, notAfter exclusive', async () => {
    const at = (nowMs: number) => verifyNodeCertificate(certificate, { nowMs })
    expect(await at(fields.notBeforeMs)).toBe(true)
    expect(await at(fields.notAfterMs - 1)).toBe(true)
    expect(await at(fields.notBeforeMs - 1)).toBe(false)
    expect(await at(fields.notAfterMs)).toBe(false)
    expect(await at(NOW + 365 * 24 * HOUR)).toBe(false)
    expect(await at(0)).toBe(false)
  })

  it('checks the expected node, model and digest', async () => {
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    expect(await verifyNodeCertificate(certificate, { nowMs: NOW, nodeId: other })).toBe(false)
    expect(await verifyNodeCertificate(certificate, { nowMs: NOW, modelId: 'other-model' })).toBe(false)
    expect(await verifyNodeCertificate(certificate, { nowMs: NOW, modelDigest: 'b'.repeat(64) })).toBe(false)
    expect(await verifyNodeCertificate(certificate, { nowMs: NOW, modelDigest: DIGEST.toUpperCase() })).toBe(false)
  })

  it('fails when any signed field is changed', async () => {
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const tampered: [string, unknown][] = [
      ['nodeId', { ...certificate, nodeId: other }],
      ['hpkePublicKey', { ...certificate, hpkePublicKey: flipBit(certificate.hpkePublicKey, 0) }],
      ['hpkePublicKey (other key)', { ...certificate, hpkePublicKey: generateX25519KeyPair().publicKey }],
      ['modelId', { ...certificate, modelId: 'lull-tinz' }],
      ['modelDigest', { ...certificate, modelDigest: `b${DIGEST.slice(1)}` }],
      ['notBeforeMs', { ...certificate, notBeforeMs: certificate.notBeforeMs - 1 }],
      ['notAfterMs', { ...certificate, notAfterMs: certificate.notAfterMs + 1 }],
      ['version', { ...certificate, version: 2 }],
      ['signature all zero', { ...certificate, signature: new Uint8Array(64) }],
      ['hardware.os', { ...certificate, hardware: { ...hardware, os: 'darwin' } }],
      ['hardware.arch', { ...certificate, hardware: { ...hardware, arch: 'arm64' } }],
      ['hardware.cpuModel', { ...certificate, hardware: { ...hardware, cpuModel: '' } }],
      ['hardware.cpuCores', { ...certificate, hardware: { ...hardware, cpuCores: 17 } }],
      [
        'hardware.ramTotalBytes',
        { ...certificate, hardware: { ...hardware, ramTotalBytes: hardware.ramTotalBytes + 1 } },
      ],
      ['hardware.gpu', { ...certificate, hardware: { ...hardware, gpu: 'metal' } }],
      ['hardware.vramTotalBytes', { ...certificate, hardware: { ...hardware, vramTotalBytes: 0 } }],
    ]
    for (let bit = 0; bit < 512; bit += 37) {
      tampered.push([`signature bit ${bit}`, { ...certificate, signature: flipBit(certificate.signature, bit) }])
    }
    for (const [label, cert] of tampered) {
      expect(await verifyNow(cert), label).toBe(false)
    }
  })

  it('fails for a certificate re-labelled with another node id, even one signed by that node', async () => {
    const otherKey = await generateKeyPair('Ed25519')
    const otherId = peerIdFromPrivateKey(otherKey).toString()
    // Signed by the other node, but claiming to be this node.
    const signature = await otherKey.sign(nodeCertificateSigningBytes(fields))
    expect(await verifyNow({ ...certificate, signature })).toBe(false)
    // This node's signature, claiming the other node.
    expect(await verifyNow({ ...certificate, nodeId: otherId })).toBe(false)
  })

  it('fails for non-Ed25519 and non-canonical peer ids', async () => {
    const secpId = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    expect(await verifyNow({ ...certificate, nodeId: secpId })).toBe(false)

    // The same Ed25519 key written as a CIDv1 string instead of the canonical base58btc multihash.
    const cidId = peerIdFromPrivateKey(identityKey).toCID().toString()
    expect(cidId).not.toBe(nodeId)
    const cidSignature = await identityKey.sign(nodeCertificateSigningBytes({ ...fields, nodeId: cidId }))
    expect(await verifyNow({ ...certificate, nodeId: cidId, signature: cidSignature })).toBe(false)

    const rsaLike = 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'
    expect(await verifyNow({ ...certificate, nodeId: rsaLike })).toBe(false)
    expect(await verifyNow({ ...certificate, nodeId: 'not a peer id' })).toBe(false)
    expect(await verifyNow({ ...certificate, nodeId: `${nodeId} ` })).toBe(false)
  })

  it('returns false, without throwing, for garbage', async () => {
    const huge = 'x'.repeat(5_000_000)
    const hugeBytes = new Uint8Array(1_000_000)
    const withProto = JSON.parse(`{"__proto__": {"version": 1}, "version": 1, "nodeId": "${nodeId}"}`)
    const hardwareWithProto = JSON.parse('{"__proto__": {"os": "linux"}}')
    const throwing = new Proxy(
      {},
      {
        get() {
          throw new Error('boom')
        },
        ownKeys() {
          throw new Error('boom')
        },
      },
    )
    class Certificate {
      constructor() {
        Object.assign(this, certificate)
      }
    }
    const garbage: unknown[] = [
      null,
      undefined,
      0,
      1,
      Number.NaN,
      true,
      'certificate',
      huge,
      hugeBytes,
      Symbol('x'),
      () => certificate,
      [],
      [certificate],
      Object.values(certificate),
      {},
      withProto,
      Object.create(certificate),
      new Certificate(),
      new Map(Object.entries(certificate)),
      throwing,
      { ...certificate, extra: 1 },
      { ...certificate, hardware: hardwareWithProto },
      { ...certificate, hardware: { ...hardware, extra: 1 } },
      { ...certificate, hardware: null },
      { ...certificate, hardware: [] },
      { ...certificate, hardware: { ...hardware, gpu: 'tpu' } },
      { ...certificate, hardware: { ...hardware, cpuCores: 0 } },
      { ...certificate, hardware: { ...hardware, cpuCores: 1.5 } },
      { ...certificate, hardware: { ...hardware, ramTotalBytes: -1 } },
      { ...certificate, hardware: { ...hardware, ramTotalBytes: Number.POSITIVE_INFINITY } },
      { ...certificate, hardware: { ...hardware, ramTotalBytes: 2 ** 60 } },
      { ...certificate, hardware: { ...hardware, vramTotalBytes: '0' } },
      { ...certificate, hardware: { ...hardware, os: huge } },
      { ...certificate, hardware: { ...hardware, os: '' } },
      { ...certificate, hardware: { ...hardware, cpuModel: 'bad \uD800 surrogate' } },
      { ...certificate, version: '1' },
      { ...certificate, version: undefined },
      { ...certificate, nodeId: huge },
      { ...certificate, nodeId: 42 },
      { ...certificate, nodeId: '' },
      { ...certificate, hpkePublicKey: Array.from(certificate.hpkePublicKey) },
      { ...certificate, hpkePublicKey: certificate.hpkePublicKey.subarray(1) },
      { ...certificate, hpkePublicKey: hugeBytes },
      { ...certificate, hpkePublicKey: bytesToHex(certificate.hpkePublicKey) },
      { ...certificate, modelId: huge },
      { ...certificate, modelId: '' },
      { ...certificate, modelId: null },
      { ...certificate, modelDigest: DIGEST.toUpperCase() },
      { ...certificate, modelDigest: `${DIGEST}00` },
      { ...certificate, modelDigest: huge },
      { ...certificate, notBeforeMs: String(certificate.notBeforeMs) },
      { ...certificate, notBeforeMs: BigInt(certificate.notBeforeMs) },
      { ...certificate, notBeforeMs: Number.NaN },
      { ...certificate, notBeforeMs: -1 },
      { ...certificate, notBeforeMs: certificate.notBeforeMs + 0.5 },
      { ...certificate, notAfterMs: Number.POSITIVE_INFINITY },
      { ...certificate, notBeforeMs: certificate.notAfterMs },
      { ...certificate, signature: certificate.signature.subarray(1) },
      { ...certificate, signature: Uint8Array.from([...certificate.signature, 0]) },
      { ...certificate, signature: bytesToHex(certificate.signature) },
      { ...certificate, signature: hugeBytes },
      { ...certificate, signature: undefined },
    ]
    for (const [i, value] of garbage.entries()) {
      expect(isNodeCertificate(value), `isNodeCertificate #${i}`).toBe(false)
      expect(await verifyNow(value), `garbage #${i}`).toBe(false)
    }
  })

  it('returns false, without throwing, for bad options', async () => {
    const options: unknown[] = [
      null,
      undefined,
      {},
      { nowMs: Number.NaN },
      { nowMs: String(NOW) },
      { nowMs: BigInt(NOW) },
      { nowMs: Number.POSITIVE_INFINITY },
    ]
    for (const option of options) {
      expect(await verifyNodeCertificate(certificate, option as { nowMs: number })).toBe(false)
    }
  })

  it('returns false, without throwing, for random corruptions of the wire form', async () => {
    const wire = packr.pack(certificate)
    let decodedCount = 0
    let seed = 12345
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed
    }
    for (let i = 0; i < 300; i++) {
      const corrupted = Uint8Array.from(wire)
      const flips = 1 + (random() % 3)
      for (let f = 0; f < flips; f++) corrupted[random() % corrupted.length]! ^= 1 + (random() % 255)
      let decoded: unknown
      try {
        decoded = packr.unpack(corrupted)
      } catch {
        continue
      }
      decodedCount++
      expect(await verifyNow(decoded)).toBe(false)
    }
    expect(decodedCount).toBeGreaterThan(100)
  })

  it('refuses to sign invalid fields or with the wrong key', async () => {
    const otherKey = await generateKeyPair('Ed25519')
    await expect(signNodeCertificate(fields, otherKey)).rejects.toThrow(/not the peer id/)
    const secpKey = await generateKeyPair('secp256k1')
    await expect(signNodeCertificate(fields, secpKey)).rejects.toThrow(/Ed25519/)
    const bad: Partial<Record<keyof NodeCertificateFields, unknown>>[] = [
      { modelDigest: 'xyz' },
      { modelId: '' },
      { hpkePublicKey: new Uint8Array(31) },
      { notBeforeMs: fields.notAfterMs },
      { notAfterMs: 1.5 },
      { hardware: { ...hardware, gpu: 'tpu' } },
      { hardware: { ...hardware, cpuCores: undefined } },
    ]
    for (const change of bad) {
      await expect(signNodeCertificate({ ...fields, ...change } as NodeCertificateFields, identityKey)).rejects.toThrow(
        TypeError,
      )
    }
  })
})

describe('node certificate v1 regression vector', () => {
  const vector = JSON.parse(
    readFileSync(new URL('../../test-data/node-certificate-v1.json', import.meta.url), 'utf8'),
  ) as {
    identitySeed: string
    fields: Omit<NodeCertificateFields, 'hpkePublicKey'> & { hpkePublicKey: string }
    signingBytes: string
    signature: string
  }
  const vectorFields: NodeCertificateFields = {
    ...vector.fields,
    hpkePublicKey: hexToBytes(vector.fields.hpkePublicKey),
  }

  it('encodes the signed bytes exactly as before', () => {
    expect(bytesToHex(nodeCertificateSigningBytes(vectorFields))).toBe(vector.signingBytes)
  })

  it('derives the same node id and signature from the seed, and the signature checks with @noble/curves', async () => {
    const key = await generateKeyPairFromSeed('Ed25519', hexToBytes(vector.identitySeed))
    expect(peerIdFromPrivateKey(key).toString()).toBe(vector.fields.nodeId)
    const cert = await signNodeCertificate(vectorFields, key)
    expect(bytesToHex(cert.signature)).toBe(vector.signature)
    const publicKey = ed25519.getPublicKey(hexToBytes(vector.identitySeed))
    expect(ed25519.verify(hexToBytes(vector.signature), hexToBytes(vector.signingBytes), publicKey)).toBe(true)
    expect(await verifyNodeCertificate(cert, { nowMs: vectorFields.notBeforeMs })).toBe(true)
  })
})
