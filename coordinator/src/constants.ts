/** A node must register within this time after opening its link. */
export const REGISTER_TIMEOUT_MS = 10_000
/** A node not heard from for this long is evicted. */
export const NODE_STALE_AFTER_MS = 15_000
/** How often the coordinator looks for stale nodes. */
export const EVICTION_INTERVAL_MS = 2_500
/** Requests waiting for a free slot, per model, before new ones are refused as `no-capacity`. */
export const MAX_QUEUED_REQUESTS_PER_MODEL = 1_024
/** The wait an `overloaded` refusal suggests before retrying. */
export const OVERLOADED_RETRY_AFTER_MS = 1_000
/** How long a request may wait for a free slot (over all its stretches in the queue) before it is refused as
 * `no-capacity`. */
export const QUEUE_TIMEOUT_MS = 30_000
/** Default listen address. */
export const DEFAULT_LISTEN_ADDRESS = '/ip4/127.0.0.1/tcp/4710'
// Scoring (see scheduler.ts): each factor multiplies the node's free-slot count.
/** A node's speed factor ranges from this (slowest candidate measured) to 1 (fastest). */
export const SCORE_SPEED_FLOOR = 0.25
/** Added to both sides of the TTFT ratio so that a few milliseconds' difference barely matters. */
export const SCORE_LATENCY_SMOOTHING_MS = 20
/** Successes a node is credited with before its first request, so one early failure does not sink it. */
export const SCORE_PRIOR_SUCCESSES = 4
/** A node not heard from for this long (over two heartbeat intervals) is treated as doubtful. */
export const SCORE_QUIET_AFTER_MS = 12_000
/** The health factor of a doubtful (quiet) node. */
export const SCORE_QUIET_FACTOR = 0.5
/**
 * Candidates scoring within this fraction of the best count as tied and share the work at random: measured rates
 * and latencies are noisy, and a few percent should not send every request to the same node.
 */
export const SCORE_TIE_TOLERANCE = 0.1

/** Requests waiting in one model's queue are served in priority order, highest first. */
export const HIGHEST_PRIORITY = 9
/** The weight of a client in fair sharing unless `clientWeight` says otherwise. */
export const DEFAULT_CLIENT_WEIGHT = 1

/** Dispatches to one node collected within this window travel in one `dispatch-batch`; 0 flushes on the next
 * turn of the event loop (setImmediate), which batches whatever was placed in the same turn. */
export const DISPATCH_BATCH_WINDOW_MS = 0
