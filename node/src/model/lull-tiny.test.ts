import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama, LlamaChatSession, readGgufFileInfo } from 'node-llama-cpp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sha256File } from './file-digest.js'
import { ensureLullTinyModel, LULL_TINY_MODEL_ID } from './lull-tiny.js'
import { TINY_CORPUS_PARAGRAPHS } from './tiny-corpus.js'

const MAX_FILE_SIZE_BYTES = 8 * 1024 * 1024

let dataDir: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-tiny-'))
})

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

function corpusVocabulary(): Set<string> {
  return new Set(TINY_CORPUS_PARAGRAPHS.flatMap((paragraph) => paragraph.match(/[A-Za-z]+/g) ?? []))
}

describe('ensureLullTinyModel', () => {
  it('builds the same bytes every time', async () => {
    const first = await ensureLullTinyModel(join(dataDir, 'a'))
    const second = await ensureLullTinyModel(join(dataDir, 'b'))
    expect(first.id).toBe(LULL_TINY_MODEL_ID)
    expect(first.path).toBe(join(dataDir, 'a', 'models', 'lull-tiny.gguf'))
    expect(first.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(second.sha256).toBe(first.sha256)
    expect(await sha256File(first.path)).toBe(first.sha256)
    expect(first.sizeBytes).toBe((await stat(first.path)).size)
    expect(first.sizeBytes).toBeLessThan(MAX_FILE_SIZE_BYTES)
  })

  it('keeps a correct file and replaces a damaged one', async () => {
    const dir = join(dataDir, 'c')
    const model = await ensureLullTinyModel(dir)
    const { mtimeMs } = await stat(model.path)
    expect((await ensureLullTinyModel(dir)).sha256).toBe(model.sha256)
    expect((await stat(model.path)).mtimeMs).toBe(mtimeMs)

    await writeFile(model.path, 'GGUF and then nothing useful')
    const repaired = await ensureLullTinyModel(dir)
    expect(repaired.sha256).toBe(model.sha256)
    expect(await sha256File(model.path)).toBe(model.sha256)
  })

  it('stops when aborted', async () => {
    await expect(ensureLullTinyModel(join(dataDir, 'd'), { signal: AbortSignal.abort() })).rejects.toThrow()
  })

  it('writes a GGUF v3 llama model that parses back', async () => {
    const model = await ensureLullTinyModel(join(dataDir, 'a'))
    expect((await readFile(model.path)).subarray(0, 4).toString('ascii')).toBe('GGUF')
    const info = await readGgufFileInfo(model.path, { logWarnings: false })
    expect(info.version).toBe(3)
    const metadata = info.metadata as unknown as {
      general: { architecture: string; name: string }
      llama: { context_length: number; block_count: number }
      tokenizer: { ggml: { model: string; tokens: string[]; token_type: number[] } }
    }
    expect(metadata.general.architecture).toBe('llama')
    expect(metadata.general.name).toBe(LULL_TINY_MODEL_ID)
    expect(metadata.llama.context_length).toBe(4096)
    expect(metadata.tokenizer.ggml.model).toBe('llama')
    const { tokens, token_type: types } = metadata.tokenizer.ggml
    expect(tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>'])
    expect(tokens[3 + 0x41]).toBe('<0x41>')
    expect(types.filter((type) => type === 6)).toHaveLength(256)
    // Every prefix of every word is a token, so words never fall back to bytes.
    const tokenSet = new Set(tokens)
    for (const word of corpusVocabulary()) {
      for (let end = 1; end <= word.length; end++) expect(tokenSet.has(`\u2581${word.slice(0, end)}`)).toBe(true)
    }
    expect(info.tensorInfo?.map((tensor) => tensor.name)).toContain('output.weight')
  })
})

describe('lull-tiny in node-llama-cpp', () => {
  it('tokenizes words whole and generates words from the corpus', async () => {
    const model = await ensureLullTinyModel(join(dataDir, 'a'))
    const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1 })
    try {
      const loaded = await llama.loadModel({ modelPath: model.path })
      expect(loaded.tokenize('The cat sleeps on the warm step.')).toHaveLength(8)
      expect(loaded.detokenize(loaded.tokenize('Any text, even 42 émojis 🙂, tokenizes.'))).toBe(
        'Any text, even 42 émojis 🙂, tokenizes.',
      )

      const context = await loaded.createContext({ contextSize: 2048, threads: 1 })
      const sequence = context.getSequence()
      const vocabulary = corpusVocabulary()
      const words: string[] = []
      // Generations may end early on an end-of-sequence token; gather a few seeded ones.
      for (let seed = 1; words.length < 40 && seed <= 10; seed++) {
        const session = new LlamaChatSession({ contextSequence: sequence })
        const text = await session.prompt('Tell me about your day.', { temperature: 0.8, seed, maxTokens: 40 })
        session.dispose({ disposeSequence: false })
        await sequence.clearHistory()
        words.push(...text.split(/\s+/).filter((word) => word.length > 0))
      }
      const known = words.filter((word) => vocabulary.has(word.replace(/[.,]+$/, '')))
      expect(words.length).toBeGreaterThanOrEqual(40)
      expect(known.length / words.length).toBeGreaterThanOrEqual(0.8)
    } finally {
      await llama.dispose()
    }
  })
})
