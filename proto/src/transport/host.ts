import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'

export interface LullHostOptions {
  /** Multiaddrs to listen on; none for a host that only dials (a client). */
  listen?: string[]
  /** The host's identity; a fresh one when omitted. */
  privateKey?: PrivateKey
  /**
   * Most open connections.
   * @default 512
   */
  maxConnections?: number
  /**
   * New inbound connections accepted per second from one host. libp2p's default (5) refuses quick re-dials from
   * a single address, which is what a node restarting behind one NAT or a test on 127.0.0.1 does.
   * @default 100
   */
  inboundConnectionThreshold?: number
}

/** TCP + noise + yamux, with the connection limits set explicitly. The caller starts handlers and stops it. */
export async function createLullHost(options: LullHostOptions = {}): Promise<Libp2p> {
  return createLibp2p({
    ...(options.privateKey === undefined ? {} : { privateKey: options.privateKey }),
    addresses: { listen: options.listen ?? [] },
    transports: [tcp({ inboundSocketInactivityTimeout: 5 * 60_000, outboundSocketInactivityTimeout: 5 * 60_000 })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      maxConnections: options.maxConnections ?? 512,
      inboundConnectionThreshold: options.inboundConnectionThreshold ?? 100,
      maxIncomingPendingConnections: 64,
      inboundUpgradeTimeout: 10_000,
    },
  })
}
