/**
 * Bigram statistics of the tiny corpus, grouped into "states": tokens whose next-token counts are
 * proportional share a state (most words seen once share one with the other words seen before the
 * same successor), so the model needs one embedding direction per state, not per word.
 */
import { BOS_TOKEN_ID, EOS_TOKEN_ID, type TinyVocabulary } from './tiny-vocabulary.js'

/** Weight of the bigram estimate; the rest goes to the unigram distribution (interpolated smoothing). */
export const BIGRAM_WEIGHT = 0.95
/**
 * Scale applied to the probability of ending the text. The corpus ends a paragraph after about one sentence in
 * five, which made answers one or two sentences long; scaled down, answers run for several sentences (about 4% of
 * sentence ends become the end of the text).
 */
export const END_OF_TEXT_WEIGHT = 0.15
/** Logit of a token the model never emits (bytes, control tokens, bare prefixes). */
export const NEVER_LOGIT = -1000

export interface BigramTable {
  stateCount: number
  /** State of each token id; tokens never seen before another token use the sentence-start state (BOS's). */
  stateOfToken: Int32Array
  /** Next-token logits per state: `logits[state * vocabSize + token]`. */
  logits: Float32Array
}

function greatestCommonDivisor(a: number, b: number): number {
  return b === 0 ? a : greatestCommonDivisor(b, a % b)
}

/** A key equal for two tokens exactly when their successor counts are proportional. */
function distributionKey(successors: ReadonlyMap<number, number>): string {
  const entries = [...successors.entries()].sort(([a], [b]) => a - b)
  const divisor = entries.reduce((gcd, [, count]) => greatestCommonDivisor(gcd, count), 0)
  return entries.map(([token, count]) => `${token}:${count / divisor}`).join(',')
}

export function buildBigramTable(vocabulary: TinyVocabulary): BigramTable {
  const vocabSize = vocabulary.tokens.length
  const successorCounts = new Map<number, Map<number, number>>()
  for (const paragraph of vocabulary.paragraphs) {
    for (let i = 0; i + 1 < paragraph.length; i++) {
      const current = paragraph[i]!
      const next = paragraph[i + 1]!
      let successors = successorCounts.get(current)
      if (!successors) {
        successors = new Map()
        successorCounts.set(current, successors)
      }
      successors.set(next, (successors.get(next) ?? 0) + 1)
    }
  }

  // States in order of their first token id; BOS (id 1) comes before every word, so BOS's state is 0.
  const stateByKey = new Map<string, number>()
  const stateDistributions: Map<number, number>[] = []
  const stateOfToken = new Int32Array(vocabSize)
  const tokensWithSuccessors = [...successorCounts.keys()].sort((a, b) => a - b)
  for (const token of tokensWithSuccessors) {
    const successors = successorCounts.get(token)!
    const key = distributionKey(successors)
    let state = stateByKey.get(key)
    if (state === undefined) {
      state = stateDistributions.length
      stateByKey.set(key, state)
      stateDistributions.push(successors)
    }
    stateOfToken[token] = state
  }
  const startState = stateOfToken[BOS_TOKEN_ID]!
  for (let token = 0; token < vocabSize; token++) {
    if (!successorCounts.has(token)) stateOfToken[token] = startState
  }

  const unigramTotal = [...vocabulary.unigramCounts.values()].reduce((sum, count) => sum + count, 0)
  const stateCount = stateDistributions.length
  const logits = new Float32Array(stateCount * vocabSize)
  stateDistributions.forEach((successors, state) => {
    const total = [...successors.values()].reduce((sum, count) => sum + count, 0)
    for (let token = 0; token < vocabSize; token++) {
      const bigram = (successors.get(token) ?? 0) / total
      const unigram = (vocabulary.unigramCounts.get(token) ?? 0) / unigramTotal
      const weight = token === EOS_TOKEN_ID ? END_OF_TEXT_WEIGHT : 1
      const probability = (BIGRAM_WEIGHT * bigram + (1 - BIGRAM_WEIGHT) * unigram) * weight
      logits[state * vocabSize + token] = probability > 0 ? Math.log(probability) : NEVER_LOGIT
    }
  })
  return { stateCount, stateOfToken, logits }
}
