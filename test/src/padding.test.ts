import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LullClient } from '@lull/client-sdk'
import { createLogger, LullNode } from '@lull/node'
import {
  REQUEST_BODY_BUCKETS_BYTES,
  REQUEST_NONCE_BYTES,
  REQUEST_TAG_BYTES,
  RESPONSE_CHUNK_OVERHEAD,
  RESPONSE_PIECE_BUCKETS_BYTES,
  RESPONSE_SALT_BYTES,
} from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HostileCoordinator } from './hostile-coordinator.js'

let hostile: HostileCoordinator
let nodes: LullNode[] = []
let dataDir: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-padding-'))
  hostile = await HostileCoordinator.start()
  nodes = await Promise.all(
    [0, 1].map((index) =>
      LullNode.start({
        coordinator: hostile.address,
        model: 'lull-tiny',
        dataDir: join(dataDir, `node-${index}`),
        slots: 2,
        threads: 1,
        logger: createLogger('silent'),
      }),
    ),
  )
  await hostile.waitForNodes(2)
})

afterAll(async () => {
  await Promise.allSettled(nodes.map((node) => node.stop()))
  await hostile?.stop()
  await rm(dataDir, { recursive: true, force: true })
})

interface Observed {
  /** UTF-8 length of each text delta the client received. */
  deltaBytes: number[]
  /** Length of each sealed chunk, as the coordinator relayed it. */
  chunkBytes: number[]
  sizeBucket: number
  ciphertextBytes: number
}

/** Asks one question through the hostile (but honestly relaying) coordinator; returns what each side saw. */
async function ask(content: string, maxTokens: number, seed: number): Promise<Observed> {
  hostile.mode = 'honest'
  const client = await LullClient.connect({ coordinator: hostile.address })
  const deltaBytes: number[] = []
  try {
    for await (const event of client.chat({
      model: 'lull-tiny',
      messages: [{ role: 'user', content }],
      maxTokens,
      seed,
    })) {
      if (event.type === 'text-delta') deltaBytes.push(Buffer.byteLength(event.text))
    }
  } finally {
    await client.close()
  }
  const dispatch = hostile.lastDispatch
  if (dispatch === undefined) throw new Error('the coordinator dispatched nothing')
  return {
    deltaBytes,
    chunkBytes: hostile.chunksFor(dispatch.requestId).map((chunk) => chunk.data.length),
    sizeBucket: dispatch.header.sizeBucket,
    ciphertextBytes: dispatch.sealed.ciphertext.length,
  }
}

/** Every length a sealed chunk may have: a padded piece plus the chunk overhead, and the salt on the first. */
const LATER_CHUNK_SIZES = RESPONSE_PIECE_BUCKETS_BYTES.map((bucket) => bucket + RESPONSE_CHUNK_OVERHEAD)
const FIRST_CHUNK_SIZES = LATER_CHUNK_SIZES.map((size) => size + RESPONSE_SALT_BYTES)

describe('what sizes show the coordinator', () => {
  it('sealed chunks have one of a few sizes, whatever the length of the text they carry', async () => {
    const runs = [
      await ask('Tell me about the sea', 4, 1),
      await ask('Tell me a long story about a garden', 120, 2),
      await ask('Describe the old house', 300, 3),
    ]
    const allDeltaBytes = new Set<number>()
    const allChunkBytes = new Set<number>()
    for (const run of runs) {
      const [first, ...later] = run.chunkBytes
      expect(first).toBeDefined()
      expect(FIRST_CHUNK_SIZES).toContain(first)
      for (const size of later) expect(LATER_CHUNK_SIZES).toContain(size)
      for (const size of run.deltaBytes) allDeltaBytes.add(size)
      for (const size of later) allChunkBytes.add(size)
    }
    // Precondition: the text came in pieces of many different lengths (so padding had something to hide)...
    expect(allDeltaBytes.size).toBeGreaterThanOrEqual(5)
    // ...yet the coordinator saw far fewer chunk sizes than there were text lengths.
    expect(allChunkBytes.size).toBeLessThan(allDeltaBytes.size)
    expect(allChunkBytes.size).toBeLessThanOrEqual(LATER_CHUNK_SIZES.length)
  })

  it('sealed requests are exactly a bucket (plus the envelope) long, and prompts in one bucket look the same', async () => {
    const short = await ask('Hi', 2, 4)
    const longer = await ask(`Tell me about ${'the garden and '.repeat(40)}the house`, 2, 5)
    const large = await ask('a story '.repeat(400), 2, 6)
    for (const run of [short, longer, large]) {
      expect(REQUEST_BODY_BUCKETS_BYTES).toContain(run.sizeBucket)
      expect(run.ciphertextBytes).toBe(run.sizeBucket + REQUEST_NONCE_BYTES + REQUEST_TAG_BYTES)
    }
    // Two prompts of 2 and ~620 characters: the coordinator cannot tell them apart by size.
    expect(short.ciphertextBytes).toBe(longer.ciphertextBytes)
    expect(short.sizeBucket).toBe(1024)
    // A 3,200-character prompt lands in the 4 KiB bucket.
    expect(large.sizeBucket).toBe(4096)
  })
})
