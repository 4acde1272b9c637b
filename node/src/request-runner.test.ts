import { randomBytes } from 'node:crypto'
import {
  type DispatchMessage,
  decodeResponsePiece,
  encodeHeaderAad,
  encodeRequestBody,
  generateX25519KeyPair,
  type NodeToCoordinator,
  openRequest,
  RESPONSE_CHUNK_OVERHEAD,
  RESPONSE_PIECE_BUCKETS_BYTES,
  RESPONSE_SALT_BYTES,
  type RequestHeader,
  ResponseOpener,
  sealRequest,
} from '@lull/proto'
import { describe, expect, it } from 'vitest'
import type { Engine } from './engine/index.js'
import { createLogger } from './logger.js'
import { ReplayGuard } from './replay-guard.js'
import { runDispatch } from './request-runner.js'

const NODE_ID = 'node-under-test'
const keyPair = generateX25519KeyPair()

/** An engine that emits fixed text pieces, and counts how often it was asked to generate. */
function scriptedEngine(pieces: string[]) {
  const engine = {
    runs: 0,
    async generate(_params: unknown, onText: (text: string) => void) {
      engine.runs++
      for (const piece of pieces) onText(piece)
      return { finishReason: 'stop' as const, promptTokens: 7, outputTokens: pieces.length }
    },
  }
  return engine
}

async function sealedDispatch(createdAtMs = Date.now()) {
  const header: RequestHeader = {
    model: 'lull-tiny',
    maxTokens: 64,
    sizeBucket: 1024,
    candidates: [NODE_ID],
    priority: 0,
  }
  const body = encodeRequestBody({
    messages: [{ role: 'user', content: 'Hello' }],
    maxTokens: 64,
    temperature: 0,
    createdAtMs,
    nonce: randomBytes(16),
  })
  const { sealed, contentKey } = await sealRequest(
    body,
    [{ nodeId: NODE_ID, publicKey: keyPair.publicKey }],
    encodeHeaderAad(header),
  )
  const dispatch: DispatchMessage = { type: 'dispatch', requestId: 'request-0001', header, sealed }
  return { dispatch, contentKey }
}

async function run(engine: ReturnType<typeof scriptedEngine>, dispatch: DispatchMessage, replayGuard: ReplayGuard) {
  const sent: NodeToCoordinator[] = []
  const outcome = await runDispatch(
    {
      engine: engine as unknown as Engine,
      nodeId: NODE_ID,
      modelId: 'lull-tiny',
      keys: { open: (sealed, aad) => openRequest(sealed, NODE_ID, keyPair.secretKey, aad) },
      logger: createLogger('silent'),
      send: (message) => {
        sent.push(message)
        return true
      },
      replayGuard,
    },
    dispatch,
    new AbortController().signal,
  )
  const chunks = sent.flatMap((message) => (message.type === 'chunk' ? [message.data] : []))
  const errors = sent.flatMap((message) => (message.type === 'error' ? [message.code] : []))
  return { outcome, chunks, errors }
}

describe('runDispatch', () => {
  it('pads every sealed chunk to a bucket and splits a long burst of text, losing nothing', async () => {
    // A first token, a burst far longer than one piece may carry (with characters of 1 to 4 UTF-8 bytes), and more.
    const burst = 'word '.repeat(2_000) + '€'.repeat(3_000) + '😀'.repeat(2_500)
    const pieces = ['Once', burst, ' upon', ' a time.']
    const engine = scriptedEngine(pieces)
    const { dispatch, contentKey } = await sealedDispatch()
    const { outcome, chunks, errors } = await run(engine, dispatch, new ReplayGuard())
    expect(errors).toEqual([])
    expect(outcome.kind).toBe('served')

    const opener = new ResponseOpener(contentKey)
    let text = ''
    let finalSeen = false
    for (const [index, chunk] of chunks.entries()) {
      const salt = index === 0 ? RESPONSE_SALT_BYTES : 0
      expect(RESPONSE_PIECE_BUCKETS_BYTES).toContain(chunk.length - RESPONSE_CHUNK_OVERHEAD - salt)
      const { plaintext, final } = opener.open(chunk)
      text += decodeResponsePiece(plaintext).text
      finalSeen = final
    }
    expect(finalSeen).toBe(true)
    expect(text).toBe(pieces.join(''))
    // The burst could not fit one piece: it was split over several.
    expect(chunks.length).toBeGreaterThan(4)
  })

  it('runs a request once: the same dispatch again is refused as replayed without generating', async () => {
    const engine = scriptedEngine(['Hi'])
    const guard = new ReplayGuard()
    const { dispatch } = await sealedDispatch()
    expect((await run(engine, dispatch, guard)).outcome.kind).toBe('served')
    const replay = await run(engine, { ...dispatch, requestId: 'request-0002' }, guard)
    expect(replay.errors).toEqual(['replayed'])
    expect(replay.chunks).toEqual([])
    expect(engine.runs).toBe(1)
  })

  it('refuses a request sealed before the window as request-expired without generating', async () => {
    const engine = scriptedEngine(['Hi'])
    const guard = new ReplayGuard({ windowMs: 60_000 })
    const { dispatch } = await sealedDispatch(Date.now() - 61_000)
    const { errors, chunks } = await run(engine, dispatch, guard)
    expect(errors).toEqual(['request-expired'])
    expect(chunks).toEqual([])
    expect(engine.runs).toBe(0)
  })
})
