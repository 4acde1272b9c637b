import type { Stream } from '@libp2p/interface'
import { type CoordinatorToNode, ErrorCode, LullError, MessageChannel, NODE_TO_COORDINATOR } from '@lull/proto'
import { REGISTER_TIMEOUT_MS } from './constants.js'
import type { Coordinator } from './coordinator.js'
import type { NodeEntry } from './registry.js'
import { errorReply } from './wire-errors.js'

/**
 * Serves one node's long-lived link: registration first, then heartbeats and the sealed answers it streams back.
 * Bad frames get a typed error reply and the link keeps going; an oversized frame ends the link (the byte stream
 * is out of step), and the node reconnects.
 */
export async function handleNodeStream(coordinator: Coordinator, stream: Stream, peerId: string): Promise<void> {
  const channel = new MessageChannel<typeof NODE_TO_COORDINATOR, CoordinatorToNode>(stream, {
    inbound: NODE_TO_COORDINATOR,
    ...(coordinator.frameObserver === undefined ? {} : { observer: coordinator.frameObserver }),
  })
  let entry: NodeEntry | undefined
  const registerTimer = setTimeout(() => {
    if (entry === undefined) channel.abort(new Error(`no registration within ${REGISTER_TIMEOUT_MS} ms`))
  }, REGISTER_TIMEOUT_MS)
  try {
    for await (const received of channel) {
      if (!received.ok) {
        coordinator.log.debug({ peerId, code: received.error.code }, 'bad frame from node')
        channel.trySend(errorReply(received.error))
        if (received.fatal) break
        continue
      }
      const message = received.message
      if (entry === undefined) {
        if (message.type !== 'register') {
          channel.trySend(
            errorReply(new LullError(ErrorCode.UnexpectedMessage, 'register before sending anything else')),
          )
          continue
        }
        const result = await coordinator.registerNode(channel, peerId, message)
        if (!(result instanceof Error)) {
          entry = result
          await channel.send({ type: 'registered', nodeId: peerId })
          continue
        }
        coordinator.log.info({ peerId, code: result.code }, 'node registration refused')
        channel.trySend(errorReply(result))
        break
      }
      entry.lastSeenMs = Date.now()
      const revoked = message.type === 'heartbeat' ? coordinator.accounts.nodeTokenRevoked(peerId) : undefined
      if (revoked !== undefined) {
        coordinator.log.info({ peerId }, 'join token revoked: dropping the node')
        channel.trySend(errorReply(revoked))
        break
      }
      switch (message.type) {
        case 'heartbeat':
          entry.stateReason = message.reason
          entry.reportedBusySlots = message.busySlots
          entry.reportedAtMs = entry.lastSeenMs
          entry.ramFreeBytes = message.ramFreeBytes
          entry.loadAverage = message.loadAverage
          if (entry.state !== message.state) {
            entry.state = message.state
            coordinator.nodeStateChanged(entry)
          }
          break
        case 'chunk':
          coordinator.relayChunk(entry, message.requestId, message.data, message.final === true)
          break
        case 'end':
          coordinator.finishFromNode(entry, message)
          break
        case 'error':
          coordinator.failFromNode(entry, message)
          break
        case 'register':
          channel.trySend(errorReply(new LullError(ErrorCode.UnexpectedMessage, 'this link is already registered')))
          break
        case 'certificate': {
          const refused = await coordinator.renewCertificate(entry, message.certificate)
          if (refused !== undefined) channel.trySend(errorReply(refused))
          break
        }
      }
    }
  } finally {
    clearTimeout(registerTimer)
    if (entry !== undefined) coordinator.nodeGone(entry, 'link closed')
    await channel.close()
  }
}
