/** Protocol ids: `/lull/<role>/<version>`. */
export const NODE_PROTOCOL = '/lull/node/1.0.0'
export const CLIENT_PROTOCOL = '/lull/client/1.0.0'

/**
 * The largest frame any Lull peer accepts. The length prefix is checked against it before a byte of the body is
 * buffered or decoded.
 */
export const MAX_FRAME_BYTES = 1024 * 1024
/** Deepest nesting of arrays and maps a decoder accepts. Lull's own messages nest at most 6 deep. */
export const MAX_MESSAGE_DEPTH = 16
/** Largest request body (sealed) a client may submit. */
export const MAX_SEALED_BODY_BYTES = 512 * 1024
/** Most candidate nodes a request may be sealed for. */
export const MAX_CANDIDATES = 16
/** Most chat messages in one request. */
export const MAX_CHAT_MESSAGES = 256
/** Longest error message text carried on the wire. */
export const MAX_ERROR_MESSAGE_CHARS = 1024
/** Default number of candidate nodes a client seals each request for. */
export const DEFAULT_CANDIDATES = 3
/** How often a node tells the coordinator its live load. */
export const HEARTBEAT_INTERVAL_MS = 5_000
/** How often a node replaces its HPKE key (and certificate). */
export const KEY_ROTATION_INTERVAL_MS = 24 * 60 * 60 * 1000
/**
 * How long a replaced key stays valid after its successor is announced: clients holding a catalogue fetched
 * before the rotation can still reach the node. A certificate is valid for the rotation interval plus this.
 */
export const KEY_OVERLAP_MS = 60 * 60 * 1000
/** Allowed clock difference when checking certificate validity windows. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000
