import {
  type DispatchMessage,
  decodeRequestBody,
  ErrorCode,
  type ErrorMessage,
  encodeHeaderAad,
  encodeResponsePiece,
  type FinishReason,
  LullError,
  type NodeToCoordinator,
  type ResponsePiece,
  ResponseSealer,
  type SignedUsageFields,
  splitResponseText,
} from '@lull/proto'
import { CHUNK_COALESCE_MS, CHUNK_MAX_TEXT_CHARS } from './constants.js'
import type { Engine } from './engine/index.js'
import type { KeyRing } from './key-ring.js'
import type { Logger } from './logger.js'
import type { ReplayGuard } from './replay-guard.js'

export interface RequestRunnerComponents {
  engine: Engine
  nodeId: string
  modelId: string
  /** The node's HPKE keys: the current one and, during the overlap, the one it replaced. */
  keys: Pick<KeyRing, 'open'>
  logger: Logger
  /** Sends a message on the coordinator link; false when the link is gone. */
  send: (message: NodeToCoordinator) => boolean
  /** The node's strike register of request nonces: it outlives single dispatches. */
  replayGuard: ReplayGuard
  /** Signs the token counts of a finished request with the node's identity key (see `signUsage` in proto). */
  signUsage?: (fields: SignedUsageFields) => Promise<Uint8Array>
}

/** What became of a dispatched request, for the node's counters. */
export type DispatchOutcome = { kind: 'served'; finishReason: FinishReason; outputTokens: number } | { kind: 'failed' }

/**
 * Runs one dispatched request: opens the sealed body (only this node can), refuses it if it is a replay or outside
 * the replay window, generates, and streams the answer back sealed in chunks. The first text goes out at once;
 * later text is coalesced for a few milliseconds. Every chunk's plaintext is padded to a response bucket (text too
 * long for one piece is split over several). Failures are reported as typed errors that never carry request or
 * answer text.
 */
export async function runDispatch(
  components: RequestRunnerComponents,
  dispatch: DispatchMessage,
  signal: AbortSignal,
): Promise<DispatchOutcome> {
  const { requestId, header, sealed } = dispatch
  const { engine, logger, send } = components
  const startedAtMs = Date.now()
  let outcome: DispatchOutcome
  try {
    if (header.model !== components.modelId) {
      throw new LullError(ErrorCode.InvalidRequest, `this node serves "${components.modelId}", not "${header.model}"`)
    }
    const { body: bodyBytes, contentKey } = await components.keys.open(sealed, encodeHeaderAad(header))
    const body = decodeRequestBody(bodyBytes)
    // Before anything runs: a request is admitted once, and only inside its window.
    const { replayGuard } = components
    replayGuard.admit(body.nonce, body.createdAtMs)
    const sealer = new ResponseSealer(contentKey)
    const sealPiece = (piece: ResponsePiece, final: boolean): void => {
      const data = sealer.seal(encodeResponsePiece(piece), final)
      send({ type: 'chunk', requestId, data, ...(final ? { final: true } : {}) })
    }
    /** Sends `text` in as many pieces as the largest padding bucket needs; `finish` rides on the last one. */
    const sendPiece = (piece: ResponsePiece, final: boolean): void => {
      const parts = splitResponseText(piece.text)
      const last = parts.length - 1
      for (const [index, text] of parts.entries()) {
        if (index < last) sealPiece({ text }, false)
        else sealPiece({ ...piece, text }, final)
      }
    }

    let pending = ''
    /** Tokens generated up to the end of `pending`, when the engine counts them. */
    let pendingTokens: number | undefined
    let sentAny = false
    let timer: NodeJS.Timeout | undefined
    const flush = (): void => {
      timer = undefined
      if (pending.length === 0) return
      sendPiece({ text: pending, ...(pendingTokens === undefined ? {} : { outputTokens: pendingTokens }) }, false)
      pending = ''
    }
    const onText = (text: string, outputTokens?: number): void => {
      pending += text
      pendingTokens = outputTokens
      if (!sentAny || pending.length >= CHUNK_MAX_TEXT_CHARS) {
        sentAny = true
        if (timer !== undefined) clearTimeout(timer)
        flush()
      } else if (timer === undefined) {
        timer = setTimeout(flush, CHUNK_COALESCE_MS)
      }
    }

    const result = await engine.generate(
      {
        messages: body.messages,
        maxTokens: Math.min(body.maxTokens, header.maxTokens),
        temperature: body.temperature,
        ...(body.topP === undefined ? {} : { topP: body.topP }),
        ...(body.topK === undefined ? {} : { topK: body.topK }),
        ...(body.seed === undefined ? {} : { seed: body.seed }),
        ...(body.stop === undefined ? {} : { stop: body.stop }),
      },
      onText,
      { signal },
    )
    if (timer !== undefined) clearTimeout(timer)
    // Cancelled by the node itself (its owner returned and the grace period ran out): not a finished answer but
    // one handed back, reported as a retryable error so the coordinator and client can fail it over.
    if (result.finishReason === 'cancelled' && signal.reason instanceof LullError) throw signal.reason
    const usage = { promptTokens: result.promptTokens, outputTokens: result.outputTokens }
    sendPiece({ text: pending, finish: { reason: result.finishReason, ...usage } }, true)
    outcome = { kind: 'served', finishReason: result.finishReason, outputTokens: usage.outputTokens }
    // The counts the coordinator bills from, signed so the ledger holds what this node stands behind.
    const usageSignature = await components.signUsage?.({ requestId, modelId: header.model, ...usage })
    send({ type: 'end', requestId, usage, ...(usageSignature === undefined ? {} : { usageSignature }) })
  } catch (error) {
    const reply = errorReplyFor(error, requestId)
    logger.debug({ requestId, code: reply.code }, 'request failed')
    send(reply)
    return { kind: 'failed' }
  }
  logger.debug({ requestId, outcome, durationMs: Date.now() - startedAtMs }, 'request served')
  return outcome
}

function errorReplyFor(error: unknown, requestId: string): ErrorMessage {
  if (error instanceof LullError) return { type: 'error', requestId, code: error.code, message: error.message }
  // Engine and library errors are not passed on verbatim: their text could quote the request.
  const name = error instanceof Error ? error.name : 'Error'
  return { type: 'error', requestId, code: ErrorCode.EngineFailed, message: `generation failed (${name})` }
}
