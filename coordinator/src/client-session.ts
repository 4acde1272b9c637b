import type { Stream } from '@libp2p/interface'
import { CLIENT_TO_COORDINATOR, type CoordinatorToClient, ErrorCode, LullError, MessageChannel } from '@lull/proto'
import type { Coordinator } from './coordinator.js'
import type { Job } from './job.js'
import { errorReply } from './wire-errors.js'

/**
 * Serves one client stream: a catalogue request, or one submitted request (whose stream then carries the relayed
 * sealed answer, and may carry a cancel). A client that closes or resets its stream cancels its request.
 * `peerId` is the client connection's remote peer.
 */
export async function handleClientStream(coordinator: Coordinator, stream: Stream, peerId: string): Promise<void> {
  const channel = new MessageChannel<typeof CLIENT_TO_COORDINATOR, CoordinatorToClient>(stream, {
    inbound: CLIENT_TO_COORDINATOR,
    ...(coordinator.frameObserver === undefined ? {} : { observer: coordinator.frameObserver }),
  })
  let job: Job | undefined
  try {
    for await (const received of channel) {
      if (!received.ok) {
        coordinator.log.debug({ code: received.error.code }, 'bad frame from client')
        channel.trySend(errorReply(received.error))
        if (received.fatal) break
        continue
      }
      const message = received.message
      switch (message.type) {
        case 'catalogue-request': {
          const key = coordinator.accounts.authenticateClient(message.apiKey)
          if (key instanceof LullError) {
            await channel.send(errorReply(key))
            await channel.close()
            return
          }
          await channel.send(coordinator.catalogue())
          await channel.close()
          return
        }
        case 'submit':
          if (job !== undefined) {
            channel.trySend(
              errorReply(new LullError(ErrorCode.UnexpectedMessage, 'one request per stream'), message.requestId),
            )
            break
          }
          // Fair sharing is per client: the connection's peer id (with API keys, the key's account).
          job = coordinator.submit(channel, message, coordinator.accounts.accountOf(message.apiKey) ?? peerId)
          break
        case 'cancel':
          if (job !== undefined && job.clientRequestId === message.requestId) coordinator.cancel(job)
          break
      }
    }
  } finally {
    if (job !== undefined) coordinator.cancel(job)
  }
}
