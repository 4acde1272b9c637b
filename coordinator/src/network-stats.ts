import type { StatusMessage } from '@lull/proto'
import { RecentRate } from './recent-rate.js'

/** Time-to-first-token samples kept for the operator's p50/p95: the most recent ones. */
export const TTFT_SAMPLES = 1_000

/** What the network totals in the operator view are computed from. */
export type NetworkTotals = Pick<
  StatusMessage['totals'],
  | 'requestsPerMinute'
  | 'requestsServed'
  | 'requestsFailed'
  | 'failovers'
  | 'ttftP50Ms'
  | 'ttftP95Ms'
  | 'tokensPerSecond'
  | 'outputTokensServed'
>

/**
 * The coordinator's network-wide counters for the operator view and /metrics: requests served and failed,
 * failovers, output tokens, and recent time to first token. Counts and times only, in fixed memory whatever the
 * request rate (the last minute is kept as per-second buckets, TTFT as a ring of the latest samples).
 */
export class NetworkStats {
  #requestsServed = 0
  #requestsFailed = 0
  #failovers = 0
  #outputTokensServed = 0
  readonly #completions: RecentRate
  readonly #tokens: RecentRate
  readonly #ttftSamplesMs: number[] = []
  #ttftNext = 0

  constructor(sinceMs = Date.now()) {
    this.#completions = new RecentRate({ sinceMs })
    this.#tokens = new RecentRate({ sinceMs })
  }

  served(outputTokens: number, nowMs = Date.now()): void {
    this.#requestsServed++
    this.#outputTokensServed += outputTokens
    this.#completions.add(1, nowMs)
    this.#tokens.add(outputTokens, nowMs)
  }

  failed(): void {
    this.#requestsFailed++
  }

  failedOver(): void {
    this.#failovers++
  }

  /** Time from submit to the first relayed chunk of a request. */
  timeToFirstToken(ms: number): void {
    if (this.#ttftSamplesMs.length < TTFT_SAMPLES) this.#ttftSamplesMs.push(ms)
    else this.#ttftSamplesMs[this.#ttftNext] = ms
    this.#ttftNext = (this.#ttftNext + 1) % TTFT_SAMPLES
  }

  totals(nowMs = Date.now()): NetworkTotals {
    const sorted = [...this.#ttftSamplesMs].sort((a, b) => a - b)
    const percentile = (p: number): number | undefined =>
      sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
    const p50 = percentile(50)
    const p95 = percentile(95)
    return {
      requestsPerMinute: this.#completions.total(nowMs),
      requestsServed: this.#requestsServed,
      requestsFailed: this.#requestsFailed,
      failovers: this.#failovers,
      ...(p50 === undefined ? {} : { ttftP50Ms: p50 }),
      ...(p95 === undefined ? {} : { ttftP95Ms: p95 }),
      tokensPerSecond: roundTenths(this.#tokens.perSecond(nowMs)),
      outputTokensServed: this.#outputTokensServed,
    }
  }
}

export function roundTenths(value: number): number {
  return Math.round(value * 10) / 10
}
