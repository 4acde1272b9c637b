import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureLullTinyModel } from '../model/lull-tiny.js'
import { toChatHistory } from './chat-history.js'
import { Engine } from './engine.js'
import type { ChatMessage, GenerateResult } from './types.js'

const PROMPT = 'Tell me about the lighthouse on the hill.'

let dataDir: string
let engine: Engine

async function run(messages: ChatMessage[], maxTokens: number): Promise<GenerateResult & { text: string }> {
  let text = ''
  const result = await engine.generate({ messages, maxTokens, temperature: 0 }, (chunk) => {
    text += chunk
  })
  return { ...result, text }
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-continuation-'))
  const { path } = await ensureLullTinyModel(dataDir)
  engine = await Engine.load({ modelPath: path, slots: 1, threads: 1, gpu: false })
})

afterAll(async () => {
  await engine?.dispose()
  await rm(dataDir, { recursive: true, force: true })
})

describe('a trailing assistant message', () => {
  it('is the model turn to continue, not followed by a new empty one', () => {
    expect(
      toChatHistory([
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello, how' },
      ]),
    ).toEqual([
      { type: 'user', text: 'Hi' },
      { type: 'model', response: ['Hello, how'] },
    ])
  })

  it('is continued by the engine: partial answer + continuation = the direct answer', async () => {
    const user: ChatMessage = { role: 'user', content: PROMPT }
    const full = await run([user], 40)
    // Cut just before the second period, inside the answer: a cut that falls on a token boundary of the answer.
    const cut = full.text.indexOf('.', full.text.indexOf('.') + 1)
    expect(cut).toBeGreaterThan(0)
    const partial = full.text.slice(0, cut)

    const continued = await run([user, { role: 'assistant', content: partial }], 40)
    expect(continued.text.length).toBeGreaterThan(0)
    // The continuation picks up mid-sentence (it is not a new answer starting over).
    expect(continued.text.startsWith('.')).toBe(true)
    const joined = partial + continued.text
    expect(joined.startsWith(full.text) || full.text.startsWith(joined)).toBe(true)
    // The prompt now holds the partial answer (a few tokens more than the question alone), not a second turn.
    expect(continued.promptTokens).toBeGreaterThan(full.promptTokens)
    expect(continued.promptTokens).toBeLessThan(full.promptTokens + 16)
  })

  it('joins exactly at every cut: a cut after any streamed chunk, continued greedily, gives the direct answer', async () => {
    // A fresh answer, and one that itself continues an assistant prefix (the case where the first word keeps its space).
    const starts: ChatMessage[][] = [
      [{ role: 'user', content: PROMPT }],
      [
        { role: 'user', content: PROMPT },
        { role: 'assistant', content: 'In the morning the old man walked' },
      ],
    ]
    for (const start of starts) {
      const chunks: string[] = []
      const full = await engine.generate({ messages: start, maxTokens: 24, temperature: 0 }, (chunk) => {
        chunks.push(chunk)
      })
      expect(full.finishReason).toBe('length')
      const fullText = chunks.join('')
      const prefix = start[1]?.content ?? ''
      let partial = ''
      for (const chunk of chunks.slice(0, -1)) {
        partial += chunk
        const continued = await run([start[0]!, { role: 'assistant', content: prefix + partial }], 24)
        // Character for character: no missing or doubled space where the parts meet, nothing repeated or skipped.
        expect((partial + continued.text).slice(0, fullText.length)).toBe(fullText)
      }
    }
  })
})
