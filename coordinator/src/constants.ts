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
/** How long a request may wait for a free slot before it is refused as `no-capacity`. */
export const QUEUE_TIMEOUT_MS = 30_000
/** Default listen address. */
export const DEFAULT_LISTEN_ADDRESS = '/ip4/127.0.0.1/tcp/4710'
