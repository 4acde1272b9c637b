import type { Stream } from '@libp2p/interface'
import { ADMIN_TO_COORDINATOR, type CoordinatorToAdmin, ErrorCode, LullError, MessageChannel } from '@lull/proto'
import type { Coordinator } from './coordinator.js'
import { MAX_EXPLAINED_REQUESTS } from './decision-log.js'
import { errorReply } from './wire-errors.js'

/**
 * Serves one admin stream (`lull-coordinator status` / `explain`): one request, one answer. The answer holds ids,
 * hardware summaries, counters, times and scheduling reasons: never a payload or ciphertext.
 *
 * Access: an API key with the admin role (`lull-coordinator keys create --admin`); in open mode any peer may ask.
 */
export async function handleAdminStream(coordinator: Coordinator, stream: Stream, peerId: string): Promise<void> {
  const channel = new MessageChannel<typeof ADMIN_TO_COORDINATOR, CoordinatorToAdmin>(stream, {
    inbound: ADMIN_TO_COORDINATOR,
    ...(coordinator.frameObserver === undefined ? {} : { observer: coordinator.frameObserver }),
  })
  try {
    for await (const received of channel) {
      if (!received.ok) {
        channel.trySend(errorReply(received.error))
        if (received.fatal) break
        continue
      }
      const message = received.message
      const refused = coordinator.accounts.authorizeAdmin(message.apiKey)
      if (refused !== undefined) {
        coordinator.log.info({ peerId, code: refused.code }, 'admin request refused')
        await channel.send(errorReply(refused))
        break
      }
      if (message.type === 'status-request') {
        await channel.send(coordinator.status())
        break
      }
      const explained = coordinator.decisions.explain(message.requestId)
      if (explained === undefined) {
        await channel.send(
          errorReply(
            new LullError(
              ErrorCode.InvalidRequest,
              `no recent request ${message.requestId}: the coordinator remembers the last ${MAX_EXPLAINED_REQUESTS} requests, since it started`,
            ),
          ),
        )
        break
      }
      await channel.send({
        type: 'explain',
        requestId: explained.requestId,
        nodeRequestId: explained.nodeRequestId,
        model: explained.model,
        decisions: explained.decisions,
      })
      break
    }
  } finally {
    await channel.close()
  }
}
