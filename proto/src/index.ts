/**
 * @lull/proto: Lull's interface package. Wire messages and their schemas, the msgpack codec and framing, the
 * crypto envelope (HPKE-wrapped request keys, sealed response chunks), node key certificates, error codes and
 * classes, protocol ids, and the libp2p host every component runs.
 *
 * Importing it installs the small `Promise.withResolvers` polyfill that libp2p needs on Node 20.
 */
import './polyfill.js'

export * from './codec/framing.js'
export * from './codec/message-codec.js'
export * from './codec/msgpack.js'
export * from './codec/msgpack-guard.js'
export * from './constants.js'
export * from './crypto/index.js'
export * from './errors.js'
export type * from './hardware.js'
export * from './messages.js'
export * from './payload.js'
export * from './request-id.js'
export * from './transport/host.js'
export * from './transport/identity.js'
export * from './transport/message-channel.js'
