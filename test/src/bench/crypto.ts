/**
 * Benchmark (not a test): Lull's crypto envelope in operations per second, on this machine.
 *
 *   npm run build && node test/dist/bench/crypto.js [--seconds 0.5] [--out DIR]
 *
 * - seal request: what a client does per request: pad + encode the body, seal it once with a fresh content key
 *   and wrap that key with HPKE for each candidate node. Typical prompt sizes (the padded body buckets) and
 *   candidate counts.
 * - open request: what a node does per request: find its wrapped key, open it with HPKE, open the body.
 * - response chunk: seal (node) + open (client) of one padded 64-byte piece, the common case while streaming.
 * - certificate verify: what a client does per catalogue entry it has not seen.
 */
import '@lull/proto/polyfill'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  decodeRequestBody,
  encodeHeaderAad,
  encodeRequestBody,
  encodeResponsePiece,
  generateX25519KeyPair,
  openRequest,
  type RequestHeader,
  ResponseOpener,
  ResponseSealer,
  sealRequest,
  signNodeCertificate,
  verifyNodeCertificate,
} from '@lull/proto'
import { printTable, progressLine, writeResult } from './report.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '0.5' },
    out: { type: 'string' },
  },
})
const secondsPerCase = Number(values.seconds)
const progress = progressLine()

/** Runs `operation` repeatedly for about `secondsPerCase` (after a short warm-up); returns operations/s and mean ms. */
async function measure(label: string, operation: () => Promise<unknown> | unknown) {
  progress(label)
  const warmUntil = performance.now() + 50
  while (performance.now() < warmUntil) await operation()
  let count = 0
  const started = performance.now()
  const stopAt = started + secondsPerCase * 1_000
  while (performance.now() < stopAt) {
    await operation()
    count++
  }
  const elapsedMs = performance.now() - started
  return { opsPerSecond: Math.round((count * 1_000) / elapsedMs), meanMs: Number((elapsedMs / count).toFixed(3)) }
}

/** A prompt of about `chars` characters, so the padded body lands in a realistic bucket. */
function bodyOf(chars: number): Uint8Array {
  return encodeRequestBody({
    messages: [{ role: 'user', content: 'a'.repeat(chars) }],
    maxTokens: 256,
    temperature: 0.8,
    createdAtMs: Date.now(),
    nonce: randomBytes(16),
  })
}

const nodes = Array.from({ length: 5 }, (_, index) => ({ nodeId: `node-${index}`, ...generateX25519KeyPair() }))
const rows: Array<Record<string, string | number>> = []

for (const promptChars of [500, 8_000, 100_000]) {
  const body = bodyOf(promptChars)
  for (const candidates of [1, 3, 5]) {
    const recipients = nodes.slice(0, candidates).map(({ nodeId, publicKey }) => ({ nodeId, publicKey }))
    const header: RequestHeader = {
      model: 'lull-tiny',
      maxTokens: 256,
      sizeBucket: body.byteLength,
      candidates: recipients.map((recipient) => recipient.nodeId),
      priority: 0,
    }
    const aad = encodeHeaderAad(header)
    const seal = await measure(`seal: ${body.byteLength} B body, ${candidates} candidate(s)`, () =>
      sealRequest(body, recipients, aad),
    )
    rows.push({
      operation: 'seal request (client)',
      'body bytes': body.byteLength,
      candidates,
      'ops/s': seal.opsPerSecond,
      'mean ms': seal.meanMs,
    })
    if (candidates === 3) {
      const { sealed } = await sealRequest(body, recipients, aad)
      const node = nodes[1]!
      const open = await measure(`open: ${body.byteLength} B body`, async () => {
        const opened = await openRequest(sealed, node.nodeId, node.secretKey, aad)
        return decodeRequestBody(opened.body)
      })
      rows.push({
        operation: 'open request + decode (node)',
        'body bytes': body.byteLength,
        candidates,
        'ops/s': open.opsPerSecond,
        'mean ms': open.meanMs,
      })
    }
  }
}

const contentKey = randomBytes(32)
const piece = encodeResponsePiece({ text: 'word ' })
let sealer = new ResponseSealer(contentKey)
let opener = new ResponseOpener(contentKey)
let chunks = 0
const chunk = await measure('response chunk: seal + open', () => {
  // A stream of 10,000 chunks, then a fresh one (counters are per stream).
  if (++chunks % 10_000 === 0) {
    sealer = new ResponseSealer(contentKey)
    opener = new ResponseOpener(contentKey)
  }
  return opener.open(sealer.seal(piece, false))
})
rows.push({
  operation: 'response chunk seal + open',
  'body bytes': piece.byteLength,
  candidates: '-',
  'ops/s': chunk.opsPerSecond,
  'mean ms': chunk.meanMs,
})

const identity = await generateKeyPair('Ed25519')
const nodeId = peerIdFromPrivateKey(identity).toString()
const hpke = generateX25519KeyPair()
const nowMs = Date.now()
const certificate = await signNodeCertificate(
  {
    nodeId,
    hpkePublicKey: hpke.publicKey,
    modelId: 'lull-tiny',
    modelDigest: '0'.repeat(64),
    hardware: {
      os: 'linux',
      arch: 'x64',
      cpuModel: 'bench',
      cpuCores: 2,
      ramTotalBytes: 2 ** 34,
      gpu: 'none',
      vramTotalBytes: 0,
    },
    notBeforeMs: nowMs - 1_000,
    notAfterMs: nowMs + 3_600_000,
  },
  identity,
)
const verify = await measure('certificate verify', () =>
  verifyNodeCertificate(certificate, { nowMs: Date.now(), nodeId }),
)
rows.push({
  operation: 'node certificate verify (client)',
  'body bytes': '-',
  candidates: '-',
  'ops/s': verify.opsPerSecond,
  'mean ms': verify.meanMs,
})

progress('')
printTable('Crypto envelope, one core, operations per second', rows)
const path = await writeResult('crypto', { secondsPerCase, rows }, values.out)
process.stdout.write(`results: ${path}\n`)
