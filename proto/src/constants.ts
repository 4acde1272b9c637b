/** Protocol ids: `/lull/<role>/<version>`. */
export const NODE_PROTOCOL = '/lull/node/1.0.0'
export const CLIENT_PROTOCOL = '/lull/client/1.0.0'
/** The coordinator's admin view (`lull-coordinator status`, `explain`): counters and routing metadata only. */
export const ADMIN_PROTOCOL = '/lull/admin/1.0.0'

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
/** Most requests in one `dispatch-batch` message. */
export const MAX_DISPATCH_BATCH_REQUESTS = 32
/**
 * Most sealed-body bytes in one `dispatch-batch`, so that the batch with its headers and wrapped keys (a few KiB
 * per request at most) stays well inside {@link MAX_FRAME_BYTES}.
 */
export const MAX_DISPATCH_BATCH_BYTES = 640 * 1024
/** Longest request timeout a client may set in a request header (a day). */
export const MAX_REQUEST_TIMEOUT_MS = 24 * 60 * 60 * 1000
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

/**
 * Most arrays and maps one message may contain, counted over the whole message before it is decoded. Each one costs
 * the decoder an allocation, so a frame packed with empty containers (a million `[]` in 1 MiB) would otherwise
 * buy about 100 ms of CPU. Lull's largest message, a catalogue filling a whole frame, has about 16,000.
 */
export const MAX_MESSAGE_CONTAINERS = 65_536

// Connection and stream limits, set on every libp2p host (`createLullHost`) and every `MessageChannel`.

/** Most open connections per host; inbound connections beyond it are refused. */
export const MAX_CONNECTIONS = 512
/** Inbound connections still in their handshake (noise, yamux) at once; more are refused. */
export const MAX_PENDING_CONNECTIONS = 64
/** New inbound connections per second from one IP address (libp2p's default, 5, refuses a quick re-dial). */
export const INBOUND_CONNECTIONS_PER_SECOND_PER_HOST = 100
/** An inbound connection must finish its noise and yamux handshake within this time. */
export const CONNECTION_UPGRADE_TIMEOUT_MS = 10_000
/** A new stream must agree on its protocol (multistream-select) within this time. */
export const STREAM_NEGOTIATION_TIMEOUT_MS = 10_000
/**
 * A TCP socket with no bytes either way for this long is closed. Yamux pings every connection every
 * {@link MUXER_KEEPALIVE_INTERVAL_MS}, so this only ends connections whose peer has gone silent.
 */
export const SOCKET_INACTIVITY_TIMEOUT_MS = 5 * 60_000
/** How often yamux pings a connection (keeps NAT mappings open and measures the round trip). */
export const MUXER_KEEPALIVE_INTERVAL_MS = 30_000
/**
 * Streams (all protocols together) a peer may have open on one connection; yamux resets any beyond. Above the
 * largest per-protocol limit (the coordinator's client streams), so the per-protocol limits decide.
 */
export const MAX_STREAMS_PER_CONNECTION = 512
/** Streams a peer may open before this host has registered its handlers (yamux's early-stream queue). */
export const MAX_EARLY_STREAMS = 10
/**
 * Node link streams (`NODE_PROTOCOL`) per connection: the live link, plus one while a reconnect replaces it. Used
 * on both ends (the coordinator's handler, the node's dial).
 */
export const MAX_NODE_LINK_STREAMS = 2
/** Concurrent request streams one client connection may hold open; both ends set it. */
export const MAX_CLIENT_STREAMS_PER_CONNECTION = 256
/**
 * Requests one client stream may carry at once. A client stream is long-lived and carries request after request
 * (each message names its request); a client with more in flight opens another stream. Opening a stream per request
 * cost the coordinator about as much CPU as the rest of the request's relaying.
 */
export const MAX_REQUESTS_PER_CLIENT_STREAM = 128
/**
 * Largest yamux receive window per stream: how many bytes a peer may send ahead of what this host has read. When a
 * reader falls behind, the window stops growing and the peer must wait. Two frames, so a largest frame streams
 * without waiting for a window update.
 */
export const MAX_STREAM_WINDOW_BYTES = 2 * MAX_FRAME_BYTES
/**
 * Received bytes a stream may hold while its reader is paused before the stream is reset. Above the receive window,
 * so only a peer that ignores flow control reaches it.
 */
export const MAX_STREAM_READ_BUFFER_BYTES = 2 * MAX_STREAM_WINDOW_BYTES
/**
 * Bytes a stream may queue for a peer that does not read them before the stream is reset: eight largest frames
 * (a burst of large dispatches to a node, or an answer to a client that stopped reading).
 */
export const MAX_STREAM_WRITE_BUFFER_BYTES = 8 * MAX_FRAME_BYTES
/**
 * Received bytes a `MessageChannel` lets pile up ahead of its reader before it pauses the stream (backpressure
 * through the yamux window).
 */
export const MAX_CHANNEL_BACKLOG_BYTES = MAX_FRAME_BYTES
/**
 * A `MessageChannel` with no bytes received and no message sent for this long is aborted. Longer than the
 * coordinator's queue wait (a client stream may see nothing for 30 s before its request is placed) and far longer
 * than the node heartbeat (5 s), so only a silent or stalled peer meets it.
 */
export const STREAM_IDLE_TIMEOUT_MS = 120_000
/**
 * Once the first byte of a frame (its length prefix) has arrived, the whole frame must arrive within this time, or
 * the stream is aborted: a peer that trickles a frame a byte at a time, or stops in the middle, cannot hold the
 * buffer. A largest frame (1 MiB) in this time is 35 KB/s.
 */
export const FRAME_RECEIVE_TIMEOUT_MS = 30_000
/**
 * Bytes of unfinished frames all `MessageChannel`s in the process may hold together. When a frame in progress would
 * take the total above it, that stream is aborted with a retryable `no-capacity` error: many peers each holding
 * part of a large frame cannot exhaust memory.
 */
export const MAX_BUFFERED_FRAME_BYTES_TOTAL = 256 * 1024 * 1024
