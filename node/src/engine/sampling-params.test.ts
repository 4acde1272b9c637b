import { describe, expect, it } from 'vitest'
import { toChatHistory } from './chat-history.js'
import { InvalidParamsError } from './errors.js'
import { validateSamplingParams } from './sampling-params.js'
import type { GenerateParams } from './types.js'

const CONTEXT_SIZE = 2048
const valid: GenerateParams = { messages: [{ role: 'user', content: 'Hi' }], maxTokens: 10, temperature: 0.8 }

describe('validateSamplingParams', () => {
  it('passes valid params through and clamps maxTokens to the context size', () => {
    expect(validateSamplingParams({ ...valid, topP: 0.9, topK: 40, seed: 7, stop: ['.'] }, CONTEXT_SIZE)).toEqual({
      maxTokens: 10,
      temperature: 0.8,
      topP: 0.9,
      topK: 40,
      seed: 7,
      stop: ['.'],
    })
    expect(validateSamplingParams({ ...valid, maxTokens: 1_000_000 }, CONTEXT_SIZE).maxTokens).toBe(CONTEXT_SIZE)
    expect(
      validateSamplingParams({ ...valid, temperature: 0, topP: 0, topK: 0, seed: 0xffff_ffff }, CONTEXT_SIZE),
    ).toEqual({
      maxTokens: 10,
      temperature: 0,
      topP: 0,
      topK: 0,
      seed: 0xffff_ffff,
      stop: [],
    })
  })

  it.each([
    ['temperature', { temperature: 2.5 }],
    ['temperature', { temperature: -0.1 }],
    ['temperature', { temperature: Number.NaN }],
    ['temperature', { temperature: '1' }],
    ['topP', { topP: 1.5 }],
    ['topP', { topP: -1 }],
    ['topK', { topK: -1 }],
    ['topK', { topK: 2.5 }],
    ['maxTokens', { maxTokens: 0 }],
    ['maxTokens', { maxTokens: 1.5 }],
    ['maxTokens', { maxTokens: Number.POSITIVE_INFINITY }],
    ['seed', { seed: -1 }],
    ['seed', { seed: 2 ** 32 }],
    ['stop', { stop: Array.from({ length: 9 }, (_, index) => `s${index}`) }],
    ['stop', { stop: [''] }],
    ['stop', { stop: ['x'.repeat(257)] }],
    ['stop', { stop: 'not an array' }],
  ])('rejects %s in %j', (field, override) => {
    const params = { ...valid, ...override } as GenerateParams
    expect(() => validateSamplingParams(params, CONTEXT_SIZE)).toThrow(InvalidParamsError)
    try {
      validateSamplingParams(params, CONTEXT_SIZE)
    } catch (error) {
      expect((error as InvalidParamsError).field).toBe(field)
      expect((error as InvalidParamsError).code).toBe('invalid_params')
    }
  })
})

describe('toChatHistory', () => {
  it('maps roles and appends an empty model turn', () => {
    expect(
      toChatHistory([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'More' },
      ]),
    ).toEqual([
      { type: 'system', text: 'Be brief.' },
      { type: 'user', text: 'Hi' },
      { type: 'model', response: ['Hello.'] },
      { type: 'user', text: 'More' },
      { type: 'model', response: [] },
    ])
  })

  it('rejects empty or malformed messages', () => {
    expect(() => toChatHistory([])).toThrow(InvalidParamsError)
    expect(() => toChatHistory('Hi')).toThrow(InvalidParamsError)
    expect(() => toChatHistory([{ role: 'robot', content: 'Hi' }])).toThrow(/messages\[0\]\.role/)
    expect(() => toChatHistory([{ role: 'user', content: 42 }])).toThrow(/messages\[0\]\.content/)
    expect(() => toChatHistory([null])).toThrow(InvalidParamsError)
  })
})
