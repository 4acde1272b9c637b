import { Socket } from 'node:net'
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import { type TCPComponents, type TCPOptions, tcp } from '@libp2p/tcp'

/**
 * Makes every write to `socket` made in one turn of the event loop leave in one system call: the first write of a
 * turn corks the socket and the uncork is queued behind it (`process.nextTick`, so after the promise jobs of that
 * turn too). libp2p writes each yamux frame to the socket as it is sent (one noise message, one `write` each).
 * `MessageChannel` already sends one stream's messages of a turn as one frame; this joins what a turn writes across
 * the connection's streams (a coordinator relaying several answers to one client, a node's chunks for several
 * requests) and yamux's own frames (window updates, pings). Data still leaves in the same turn, so nothing waits on
 * a timer.
 */
export function coalesceSocketWrites(socket: Socket): void {
  const write = socket.write
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  socket.write = function coalescedWrite(this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return Reflect.apply(write, socket, args) as boolean
  } as Socket['write']
}

/** The TCP socket under a libp2p TCP connection (the `socket` of @libp2p/tcp's connections), if it has one. */
function socketOf(maConn: MultiaddrConnection): Socket | undefined {
  const socket = (maConn as MultiaddrConnection & { socket?: unknown }).socket
  return socket instanceof Socket ? socket : undefined
}

/** An upgrader that coalesces the socket writes of each connection it upgrades, then upgrades it as `upgrader` does. */
function coalescingUpgrader(upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get(target, property) {
      if (property === 'upgradeInbound' || property === 'upgradeOutbound') {
        return (maConn: MultiaddrConnection, options: never) => {
          const socket = socketOf(maConn)
          if (socket !== undefined) coalesceSocketWrites(socket)
          return target[property](maConn, options)
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/**
 * libp2p's TCP transport with {@link coalesceSocketWrites} on every connection, dialled or accepted. In the
 * scheduling benchmark (100 nodes, 64 client streams) the coordinator's CPU per request fell ~10 % with it.
 */
export function coalescedTcp(init: TCPOptions = {}): (components: TCPComponents) => Transport {
  const create = tcp(init)
  return (components) => {
    const transport = create(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = (address, options) => dial(address, { ...options, upgrader: coalescingUpgrader(options.upgrader) })
    transport.createListener = (options) =>
      createListener({ ...options, upgrader: coalescingUpgrader(options.upgrader) })
    return transport
  }
}
