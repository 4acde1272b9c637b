/**
 * After the first piece of an answer (sent at once), text is coalesced for this long before it is sealed and sent:
 * at most ~50 messages a second per answer. Every message costs each of the three processes it crosses its libp2p
 * and codec work; at 5 ms the relaying alone held single-stream throughput to ~0.65 of the engine on lull-tiny
 * (npm run bench:overhead), at 20 ms ~0.8, and a reader sees no difference at 50 updates a second.
 */
export const CHUNK_COALESCE_MS = 20
/** Pending text this long is sent without waiting for the coalescing interval. */
export const CHUNK_MAX_TEXT_CHARS = 2_048
/** First reconnect delay after the coordinator link drops; doubles up to the maximum, with jitter. */
export const RECONNECT_INITIAL_DELAY_MS = 250
export const RECONNECT_MAX_DELAY_MS = 10_000
/** How long the node waits for the coordinator to acknowledge its registration. */
export const REGISTER_ACK_TIMEOUT_MS = 10_000
/** Parallel sequences in the model context unless `--slots` says otherwise. */
export const DEFAULT_SLOTS = 4
/** The service manager waits this long past the node's grace period before it kills a stopping node. */
export const SERVICE_STOP_MARGIN_MS = 15_000
/** Seconds launchd and systemd wait before restarting a node that crashed. */
export const SERVICE_THROTTLE_INTERVAL_S = 10
/** How long `lull-node doctor` waits for the coordinator to answer a dial and protocol handshake. */
export const DOCTOR_DIAL_TIMEOUT_MS = 5_000
/** After a shutdown's grace period, how long cancelled requests get to send their hand-back replies. */
export const HAND_BACK_TIMEOUT_MS = 2_000
/** How long a stopping node waits for its last messages to reach the coordinator before it cuts the link. */
export const LINK_CLOSE_TIMEOUT_MS = 2_000
