import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureLullTinyModel } from '../model/lull-tiny.js'
import { generateDirectly } from './direct-reference.js'
import { Engine } from './engine.js'
import { EngineBusyError, EngineDisposedError, InvalidParamsError } from './errors.js'
import type { GenerateParams, GenerateResult } from './types.js'

const SLOTS = 4
const PROMPT = 'Tell me about your day.'

let dataDir: string
let modelPath: string
let engine: Engine

interface Collected extends GenerateResult {
  text: string
  chunks: string[]
}

async function collect(
  target: Engine,
  params: Partial<GenerateParams>,
  options: { signal?: AbortSignal; onChunk?: (chunk: string) => void } = {},
): Promise<Collected> {
  const chunks: string[] = []
  const result = await target.generate(
    { messages: [{ role: 'user', content: PROMPT }], maxTokens: 40, temperature: 0.8, ...params },
    (chunk) => {
      chunks.push(chunk)
      options.onChunk?.(chunk)
    },
    { signal: options.signal },
  )
  return { ...result, text: chunks.join(''), chunks }
}

/** A seed whose reply runs to at least `words` words (replies may end early on end-of-sequence). */
async function seedWithLongReply(words: number): Promise<{ seed: number; text: string }> {
  for (let seed = 1; seed < 100; seed++) {
    const { text } = await collect(engine, { seed })
    if (text.split(' ').length >= words) return { seed, text }
  }
  throw new Error('no seed gives a long reply')
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-engine-'))
  modelPath = (await ensureLullTinyModel(dataDir)).path
  engine = await Engine.load({ modelPath, slots: SLOTS, threads: 1, gpu: false })
})

afterAll(async () => {
  await engine?.dispose()
  await rm(dataDir, { recursive: true, force: true })
})

describe('Engine', () => {
  it('reports its shape', () => {
    expect(engine.slots).toBe(SLOTS)
    expect(engine.busySlots).toBe(0)
    expect(engine.gpu).toBe('none')
    expect(engine.vramTotalBytes).toBeGreaterThanOrEqual(0)
  })

  it('produces exactly what node-llama-cpp produces directly', async () => {
    for (const params of [
      { temperature: 0.8, seed: 42, maxTokens: 40 },
      { temperature: 1.2, seed: 7, maxTokens: 25 },
      { temperature: 0, maxTokens: 40 },
    ]) {
      const fromEngine = await collect(engine, params)
      const direct = await generateDirectly({ modelPath, prompt: PROMPT, ...params })
      expect(fromEngine.text).toBe(direct)
      expect(fromEngine.text.length).toBeGreaterThan(0)
    }
  })

  it('counts prompt and output tokens', async () => {
    const { seed } = await seedWithLongReply(12)
    const short = await collect(engine, { seed, maxTokens: 5 })
    expect(short.finishReason).toBe('length')
    expect(short.outputTokens).toBe(5)
    // "<s>[INST] Tell me about your day. [/INST] ": BOS, bytes for the brackets, one token per word.
    expect(short.promptTokens).toBeGreaterThan(10)
    expect(short.promptTokens).toBeLessThan(40)
    // " the" is one token ("▁the"); an unknown word would fall back to one token per byte.
    const oneMore = await collect(engine, {
      seed,
      maxTokens: 8,
      messages: [{ role: 'user', content: `${PROMPT} the` }],
    })
    expect(oneMore.promptTokens).toBe(short.promptTokens + 1)
    const unknownWord = await collect(engine, {
      seed,
      maxTokens: 8,
      messages: [{ role: 'user', content: `${PROMPT} xyz` }],
    })
    expect(unknownWord.promptTokens).toBe(short.promptTokens + 4)
  })

  it('gives each concurrent request the same text it gets alone', async () => {
    const seeds = [11, 12, 13, 14]
    const alone: Collected[] = []
    for (const seed of seeds) alone.push(await collect(engine, { seed, maxTokens: 60 }))

    let mostBusy = 0
    const together = await Promise.all(
      seeds.map((seed) =>
        collect(engine, { seed, maxTokens: 60 }, { onChunk: () => (mostBusy = Math.max(mostBusy, engine.busySlots)) }),
      ),
    )
    expect(mostBusy).toBe(SLOTS)
    expect(together.map((result) => result.text)).toEqual(alone.map((result) => result.text))
    expect(together.map((result) => result.outputTokens)).toEqual(alone.map((result) => result.outputTokens))
    expect(new Set(alone.map((result) => result.text)).size).toBe(seeds.length)
  })

  it('ends short requests while long ones run, and their slots take the next ones meanwhile', async () => {
    // Seeds whose replies run to maxTokens, so the long requests cannot end early on end-of-sequence.
    const longSeeds: number[] = []
    for (let seed = 1; seed < 60 && longSeeds.length < 2; seed++) {
      if ((await collect(engine, { seed, maxTokens: 300 })).finishReason === 'length') longSeeds.push(seed)
    }
    expect(longSeeds).toHaveLength(2)
    let longEnded = false
    const started: Promise<void>[] = []
    const long = Promise.all(
      longSeeds.map((seed) => {
        const { promise, resolve } = Promise.withResolvers<void>()
        started.push(promise)
        return collect(engine, { seed, maxTokens: 300 }, { onChunk: () => resolve() })
      }),
    ).finally(() => {
      longEnded = true
    })
    await Promise.all(started)

    // The other two slots, twice over: the second pair needs the slots the first one freed. With two sequences
    // generating, node-llama-cpp's batch loop lets go of the lock a clear needs only with
    // patches/node-llama-cpp+3.22.1.patch applied.
    const shortPair = () => Promise.all([21, 22].map((seed) => collect(engine, { seed, maxTokens: 3 })))
    expect((await shortPair()).map((result) => result.outputTokens)).toEqual([3, 3])
    expect(longEnded).toBe(false)
    expect((await shortPair()).map((result) => result.outputTokens)).toEqual([3, 3])
    expect(longEnded).toBe(false)

    const results = await long
    expect(results.map((result) => [result.finishReason, result.outputTokens])).toEqual([
      ['length', 300],
      ['length', 300],
    ])
  })

  it('rejects a request when every slot is busy', async () => {
    const running = [1, 2, 3, 4].map((seed) => collect(engine, { seed }))
    expect(engine.busySlots).toBe(SLOTS)
    const busy = collect(engine, { seed: 5 })
    await expect(busy).rejects.toBeInstanceOf(EngineBusyError)
    await expect(busy).rejects.toMatchObject({ code: 'engine_busy', slots: SLOTS })
    await Promise.all(running)
    expect(engine.busySlots).toBe(0)
    expect((await collect(engine, { seed: 5 })).text.length).toBeGreaterThan(0)
  })

  it('stops promptly when aborted and reuses the slot', async () => {
    const { seed, text } = await seedWithLongReply(10)
    const controller = new AbortController()
    let abortedAt = 0
    const result = await collect(
      engine,
      { seed, maxTokens: 2000 },
      {
        signal: controller.signal,
        onChunk: () => {
          if (abortedAt === 0) {
            abortedAt = performance.now()
            controller.abort()
          }
        },
      },
    )
    expect(performance.now() - abortedAt).toBeLessThan(500)
    expect(result.finishReason).toBe('cancelled')
    expect(result.outputTokens).toBeLessThanOrEqual(3)
    expect(text.startsWith(result.text)).toBe(true)
    expect(engine.busySlots).toBe(0)

    const already = await collect(engine, { seed }, { signal: AbortSignal.abort() })
    expect(already).toMatchObject({ finishReason: 'cancelled', outputTokens: 0, text: '' })
    expect((await collect(engine, { seed })).text).toBe(text)
  })

  it('ends at a stop string, leaving it out', async () => {
    const { seed, text } = await seedWithLongReply(8)
    const words = text.split(' ')
    for (const stop of [words[4]!, `${words[2]} ${words[3]}`]) {
      const stopped = await collect(engine, { seed, stop: [stop, 'never appears'] })
      expect(stopped.finishReason).toBe('stop')
      expect(stopped.text).toBe(text.slice(0, text.indexOf(stop)))
      expect(stopped.outputTokens).toBeLessThan((await collect(engine, { seed })).outputTokens)
    }
    expect((await collect(engine, { seed, stop: ['never appears'] })).text).toBe(text)
  })

  it('ends with finishReason length at maxTokens', async () => {
    const { seed } = await seedWithLongReply(8)
    expect(await collect(engine, { seed, maxTokens: 3 })).toMatchObject({ finishReason: 'length', outputTokens: 3 })
  })

  it('rejects invalid params without taking a slot', async () => {
    await expect(collect(engine, { temperature: 3 })).rejects.toBeInstanceOf(InvalidParamsError)
    await expect(collect(engine, { maxTokens: 0 })).rejects.toMatchObject({ field: 'maxTokens' })
    await expect(collect(engine, { stop: Array.from({ length: 9 }, () => 'x') })).rejects.toMatchObject({
      field: 'stop',
    })
    await expect(collect(engine, { messages: [] })).rejects.toMatchObject({ field: 'messages' })
    expect(engine.busySlots).toBe(0)
  })

  it('passes on an error thrown by onText and frees the slot', async () => {
    const failure = new Error('consumer failed')
    await expect(
      collect(
        engine,
        { seed: 3 },
        {
          onChunk: () => {
            throw failure
          },
        },
      ),
    ).rejects.toBe(failure)
    expect(engine.busySlots).toBe(0)
  })

  it('measures prefill and decode speed', async () => {
    const { prefillTokensPerSecond, decodeTokensPerSecond } = await engine.benchmark()
    expect(prefillTokensPerSecond).toBeGreaterThan(0)
    expect(decodeTokensPerSecond).toBeGreaterThan(0)
    expect(Number.isFinite(decodeTokensPerSecond)).toBe(true)
    expect(engine.busySlots).toBe(0)
  })
})

describe('Engine lifecycle', () => {
  it('cancels running requests on dispose and refuses new ones', async () => {
    const single = await Engine.load({ modelPath, slots: 1, threads: 1, gpu: false, contextSize: 512 })
    expect(single.contextSize).toBeGreaterThanOrEqual(512)
    let disposing: Promise<void> | undefined
    const result = await collect(
      single,
      { seed: 1, maxTokens: 400 },
      { onChunk: () => (disposing ??= single.dispose()) },
    )
    await disposing
    expect(result.finishReason).toBe('cancelled')
    await expect(collect(single, { seed: 1 })).rejects.toBeInstanceOf(EngineDisposedError)
    await single.dispose()
  })

  it('rejects bad options and an aborted load', async () => {
    await expect(Engine.load({ modelPath, slots: 0, threads: 1, gpu: false })).rejects.toBeInstanceOf(
      InvalidParamsError,
    )
    await expect(Engine.load({ modelPath, slots: 1, threads: 0, gpu: false })).rejects.toMatchObject({
      field: 'threads',
    })
    await expect(
      Engine.load({ modelPath, slots: 1, threads: 1, gpu: false }, { signal: AbortSignal.abort() }),
    ).rejects.toThrow()
    await expect(
      Engine.load({ modelPath: join(dataDir, 'missing.gguf'), slots: 1, threads: 1, gpu: false }),
    ).rejects.toThrow()
  })
})
