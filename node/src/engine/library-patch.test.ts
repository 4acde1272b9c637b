import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama, type Llama, type LlamaContext, type LlamaModel, type Token } from 'node-llama-cpp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureLullTinyModel } from '../model/lull-tiny.js'

/**
 * node-llama-cpp as patches/node-llama-cpp+3.22.1.patch changes it (the erase half is tested through the engine in
 * engine.test.ts). These reach into the context's native handle (`_ctx`, internal): if an upgrade moves it, this test
 * fails and the patch needs looking at again, which is the point.
 */

interface NativeContext {
  decodeBatch(): Promise<void>
}

let dataDir: string
let llama: Llama
let model: LlamaModel

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-patch-'))
  const { path } = await ensureLullTinyModel(dataDir)
  llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1 })
  model = await llama.loadModel({ modelPath: path })
})

afterAll(async () => {
  await llama?.dispose()
  await rm(dataDir, { recursive: true, force: true })
})

/** Generates `count` tokens on one sequence, recording for each sampler set-up whether a batch was decoding then. */
async function generate(
  context: LlamaContext,
  seed: number,
  count: number,
  isDecoding: () => boolean,
): Promise<{ tokens: Token[]; setUpWhileDecoding: boolean[] }> {
  const sequence = context.getSequence()
  const tokens: Token[] = []
  const setUpWhileDecoding: boolean[] = []
  const prompt = [
    ...(model.tokens.bos === null ? [] : [model.tokens.bos]),
    ...model.tokenize('Tell me about the garden'),
  ]
  const evaluation = sequence.evaluate(prompt, {
    temperature: 0.8,
    seed,
    repeatPenalty: {
      // node-llama-cpp asks for the tokens to penalise when it sets the sampler up for the next token.
      punishTokens: () => {
        setUpWhileDecoding.push(isDecoding())
        return tokens.slice(-64)
      },
    },
  })
  for await (const token of evaluation) {
    tokens.push(token)
    if (tokens.length >= count) break
  }
  sequence.dispose()
  return { tokens, setUpWhileDecoding }
}

describe('node-llama-cpp as patched', () => {
  it("sets each sequence's sampler up while its batch decodes, and samples the same tokens", async () => {
    // A fresh sequence for each of the 8 runs (a disposed sequence's id comes back to the context asynchronously).
    const context = await model.createContext({ contextSize: 512, sequences: 8, threads: 1 })
    try {
      const native = (context as unknown as { _ctx: NativeContext })._ctx
      const decodeBatch = native.decodeBatch.bind(native)
      let decoding = 0
      // The method is a read-only property of the native class; an own property on the instance shadows it.
      Object.defineProperty(native, 'decodeBatch', {
        value: () => {
          decoding++
          return decodeBatch().finally(() => decoding--)
        },
      })
      const isDecoding = () => decoding > 0

      const seeds = [3, 4, 5, 6]
      const alone = []
      for (const seed of seeds) alone.push(await generate(context, seed, 24, isDecoding))
      const together = await Promise.all(seeds.map((seed) => generate(context, seed, 24, isDecoding)))

      for (const run of [...alone, ...together]) {
        // One set-up per sampled token (the first is sampled after the prompt), every one of them during a decode.
        expect(run.setUpWhileDecoding.length).toBeGreaterThanOrEqual(run.tokens.length)
        expect(run.setUpWhileDecoding.every(Boolean)).toBe(true)
      }
      expect(together.map((run) => run.tokens)).toEqual(alone.map((run) => run.tokens))
      expect(new Set(alone.map((run) => run.tokens.join(','))).size).toBe(seeds.length)
    } finally {
      await context.dispose()
    }
  })
})
