import { InvalidParamsError } from './errors.js'
import type { GenerateParams } from './types.js'

export const MAX_TEMPERATURE = 2
export const MAX_STOP_STRINGS = 8
export const MAX_STOP_STRING_LENGTH_CHARS = 256
const MAX_SEED = 0xffff_ffff

/** Sampling settings after validation: all in range, ready for node-llama-cpp. */
export interface SamplingParams {
  maxTokens: number
  temperature: number
  topP?: number
  topK?: number
  seed?: number
  stop: string[]
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

function checkRange(field: string, value: unknown, min: number, max: number, integer: boolean): number {
  if (!isFiniteNumber(value) || (integer && !Number.isInteger(value))) {
    throw new InvalidParamsError(field, `expected ${integer ? 'an integer' : 'a finite number'}, got ${String(value)}`)
  }
  if (value < min || value > max) throw new InvalidParamsError(field, `${value} is outside ${min}..${max}`)
  return value
}

function checkStop(stop: unknown): string[] {
  if (stop === undefined) return []
  if (!Array.isArray(stop)) throw new InvalidParamsError('stop', 'expected an array of strings')
  if (stop.length > MAX_STOP_STRINGS) {
    throw new InvalidParamsError('stop', `at most ${MAX_STOP_STRINGS} stop strings are allowed, got ${stop.length}`)
  }
  for (const item of stop) {
    if (typeof item !== 'string' || item.length === 0 || item.length > MAX_STOP_STRING_LENGTH_CHARS) {
      throw new InvalidParamsError('stop', `each stop string must be 1..${MAX_STOP_STRING_LENGTH_CHARS} characters`)
    }
  }
  return [...stop]
}

/**
 * Checks a request's sampling parameters. Malformed or out-of-range values throw {@link InvalidParamsError};
 * `maxTokens` above the context size is clamped to it (the client cannot know each engine's size).
 */
export function validateSamplingParams(params: GenerateParams, contextSize: number): SamplingParams {
  const maxTokens = checkRange('maxTokens', params.maxTokens, 1, Number.MAX_SAFE_INTEGER, true)
  return {
    maxTokens: Math.min(maxTokens, contextSize),
    temperature: checkRange('temperature', params.temperature, 0, MAX_TEMPERATURE, false),
    topP: params.topP === undefined ? undefined : checkRange('topP', params.topP, 0, 1, false),
    topK: params.topK === undefined ? undefined : checkRange('topK', params.topK, 0, Number.MAX_SAFE_INTEGER, true),
    seed: params.seed === undefined ? undefined : checkRange('seed', params.seed, 0, MAX_SEED, true),
    stop: checkStop(params.stop),
  }
}
