import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import {
  CONNECTION_UPGRADE_TIMEOUT_MS,
  INBOUND_CONNECTIONS_PER_SECOND_PER_HOST,
  MAX_CONNECTIONS,
  MAX_EARLY_STREAMS,
  MAX_PENDING_CONNECTIONS,
  MAX_STREAM_READ_BUFFER_BYTES,
  MAX_STREAM_WINDOW_BYTES,
  MAX_STREAM_WRITE_BUFFER_BYTES,
  MAX_STREAMS_PER_CONNECTION,
  MUXER_KEEPALIVE_INTERVAL_MS,
  SOCKET_INACTIVITY_TIMEOUT_MS,
  STREAM_IDLE_TIMEOUT_MS,
  STREAM_NEGOTIATION_TIMEOUT_MS,
} from '../constants.js'
import { coalescedTcp } from './coalesced-tcp.js'

export interface LullHostOptions {
  /** Multiaddrs to listen on; none for a host that only dials (a client). */
  listen?: string[]
  /** The host's identity; a fresh one when omitted. */
  privateKey?: PrivateKey
  /**
   * Most open connections; inbound connections beyond it are refused.
   * @default MAX_CONNECTIONS (512)
   */
  maxConnections?: number
  /**
   * New inbound connections accepted per second from one host. libp2p's default (5) refuses quick re-dials from
   * a single address, which is what a node restarting behind one NAT or a test on 127.0.0.1 does.
   * @default INBOUND_CONNECTIONS_PER_SECOND_PER_HOST (100)
   */
  inboundConnectionThreshold?: number
}

/**
 * TCP + noise + yamux, with every connection and stream limit set explicitly (see `constants.ts` for each value and
 * why). The caller starts handlers, with per-protocol stream limits, and stops it.
 *
 * What each layer bounds:
 * - TCP: at most `maxConnections` sockets (plus the handshakes in flight) are accepted; a silent socket closes.
 * - connection manager: handshakes in flight, their duration, the per-address connection rate, and protocol
 *   negotiation time on each new stream.
 * - yamux: streams per connection, the per-stream receive window (how far a peer may send ahead of the reader),
 *   and the read and write buffers of each stream (the stream resets when a peer overflows one). A receiver grants
 *   more window once half of it is used, not after every data frame: @libp2p/yamux 8.0.3 did the latter, which cost
 *   a frame, an encryption and a write per message received and a wake-up for the peer; patches/ changes that
 *   (applied by `npm install`; yamux-window.test.ts checks it).
 * - `MessageChannel` (on top): frame size, idle and frame timeouts, reader backlog, and the process-wide budget
 *   of unfinished frames.
 */
export async function createLullHost(options: LullHostOptions = {}): Promise<Libp2p> {
  const maxConnections = options.maxConnections ?? MAX_CONNECTIONS
  return createLibp2p({
    ...(options.privateKey === undefined ? {} : { privateKey: options.privateKey }),
    addresses: { listen: options.listen ?? [] },
    transports: [
      // Writes made in one turn of the event loop leave in one system call (see coalesced-tcp.ts).
      coalescedTcp({
        inboundSocketInactivityTimeout: SOCKET_INACTIVITY_TIMEOUT_MS,
        outboundSocketInactivityTimeout: SOCKET_INACTIVITY_TIMEOUT_MS,
        // The connection manager refuses connections over its limit after accepting the socket; this refuses the
        // socket itself once that many (and the handshakes in flight) are open.
        maxConnections: maxConnections + MAX_PENDING_CONNECTIONS,
      }),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
        maxOutboundStreams: MAX_STREAMS_PER_CONNECTION,
        maxEarlyStreams: MAX_EARLY_STREAMS,
        enableKeepAlive: true,
        keepAliveInterval: MUXER_KEEPALIVE_INTERVAL_MS,
        streamOptions: {
          maxStreamWindowSize: MAX_STREAM_WINDOW_BYTES,
          maxReadBufferLength: MAX_STREAM_READ_BUFFER_BYTES,
          maxWriteBufferLength: MAX_STREAM_WRITE_BUFFER_BYTES,
          // Recorded on each stream; libp2p 3.3 does not enforce it, MessageChannel does.
          inactivityTimeout: STREAM_IDLE_TIMEOUT_MS,
        },
      }),
    ],
    connectionManager: {
      maxConnections,
      inboundConnectionThreshold: options.inboundConnectionThreshold ?? INBOUND_CONNECTIONS_PER_SECOND_PER_HOST,
      maxIncomingPendingConnections: MAX_PENDING_CONNECTIONS,
      inboundUpgradeTimeout: CONNECTION_UPGRADE_TIMEOUT_MS,
      inboundStreamProtocolNegotiationTimeout: STREAM_NEGOTIATION_TIMEOUT_MS,
      outboundStreamProtocolNegotiationTimeout: STREAM_NEGOTIATION_TIMEOUT_MS,
    },
  })
}
