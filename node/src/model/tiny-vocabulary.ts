/**
 * The SentencePiece ("llama") vocabulary of `lull-tiny`: control tokens, 256 byte tokens so any text
 * tokenizes, every corpus word (with the "▁" word-start marker) and every prefix of each word, because
 * llama.cpp's SPM tokenizer builds a word by merging adjacent symbols and each merge must yield a token.
 */

/** SentencePiece's word-start marker (U+2581), which stands for a leading space. */
export const SPM_SPACE_MARKER = '\u2581'

/** llama.cpp token types. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const

export const UNK_TOKEN_ID = 0
export const BOS_TOKEN_ID = 1
export const EOS_TOKEN_ID = 2
const BYTE_TOKEN_COUNT = 256
const FIRST_BYTE_TOKEN_ID = 3
/** Merge score of a piece that only exists as a word prefix: below every whole word's log frequency. */
const PREFIX_ONLY_SCORE = -1000

/** A word, or a punctuation mark that follows a word without a space. */
const CORPUS_PIECE_PATTERN = /[A-Za-z]+|[.,]/g

export interface TinyVocabulary {
  /** Token texts, indexed by token id. */
  tokens: string[]
  scores: Float32Array
  types: Int32Array
  /** Token id of each corpus piece ("▁word", "." or ","). */
  pieceIds: ReadonlyMap<string, number>
  /** The corpus as token ids, one array per paragraph, each starting with BOS and ending with EOS. */
  paragraphs: number[][]
  /** How often each piece id (and EOS) occurs in the corpus. */
  unigramCounts: ReadonlyMap<number, number>
}

/** Splits a paragraph into SentencePiece pieces: "▁word" for words, the bare mark for punctuation. */
export function corpusPieces(paragraph: string): string[] {
  const parts = paragraph.match(CORPUS_PIECE_PATTERN) ?? []
  return parts.map((part) => (part === '.' || part === ',' ? part : `${SPM_SPACE_MARKER}${part}`))
}

function byteTokenText(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`
}

/** Orders strings by UTF-16 code units, which unlike localeCompare is the same on every machine. */
function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function buildTinyVocabulary(paragraphs: readonly string[]): TinyVocabulary {
  const piecesByParagraph = paragraphs.map(corpusPieces)
  const pieceCounts = new Map<string, number>()
  for (const pieces of piecesByParagraph) {
    for (const piece of pieces) pieceCounts.set(piece, (pieceCounts.get(piece) ?? 0) + 1)
  }
  const totalPieces = [...pieceCounts.values()].reduce((sum, count) => sum + count, 0)

  const tokens: string[] = ['<unk>', '<s>', '</s>']
  const scores: number[] = [0, 0, 0]
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
  for (let byte = 0; byte < BYTE_TOKEN_COUNT; byte++) {
    tokens.push(byteTokenText(byte))
    scores.push(0)
    types.push(TokenType.BYTE)
  }
  if (tokens.length !== FIRST_BYTE_TOKEN_ID + BYTE_TOKEN_COUNT) throw new Error('byte tokens misplaced')

  // Whole pieces, most frequent first; ties in code-unit order so the order never varies.
  const wholePieces = [...pieceCounts.entries()].sort(
    ([pieceA, countA], [pieceB, countB]) => countB - countA || compareCodeUnits(pieceA, pieceB),
  )
  const pieceIds = new Map<string, number>()
  for (const [piece, count] of wholePieces) {
    pieceIds.set(piece, tokens.length)
    tokens.push(piece)
    scores.push(Math.log(count / totalPieces))
    types.push(TokenType.NORMAL)
  }

  const prefixOnly = new Set<string>()
  for (const piece of pieceIds.keys()) {
    if (!piece.startsWith(SPM_SPACE_MARKER)) continue
    for (let end = 1; end < piece.length; end++) {
      const prefix = piece.slice(0, end)
      if (!pieceIds.has(prefix)) prefixOnly.add(prefix)
    }
  }
  for (const prefix of [...prefixOnly].sort(compareCodeUnits)) {
    tokens.push(prefix)
    scores.push(PREFIX_ONLY_SCORE)
    types.push(TokenType.NORMAL)
  }

  const unigramCounts = new Map<number, number>()
  const paragraphIds = piecesByParagraph.map((pieces) => {
    const ids = pieces.map((piece) => pieceIds.get(piece) ?? UNK_TOKEN_ID)
    for (const id of ids) unigramCounts.set(id, (unigramCounts.get(id) ?? 0) + 1)
    unigramCounts.set(EOS_TOKEN_ID, (unigramCounts.get(EOS_TOKEN_ID) ?? 0) + 1)
    return [BOS_TOKEN_ID, ...ids, EOS_TOKEN_ID]
  })

  return {
    tokens,
    scores: Float32Array.from(scores),
    types: Int32Array.from(types),
    pieceIds,
    paragraphs: paragraphIds,
    unigramCounts,
  }
}
