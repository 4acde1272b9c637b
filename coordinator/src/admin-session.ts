import type { Stream } from '@libp2p/interface'
import { ADMIN_TO_COORDINATOR, type CoordinatorToAdmin, ErrorCode, LullError, MessageChannel } from '@lull/proto'
import type { Coordinator } from './coordinator.js'
import { MAX_EXPLAINED_REQUESTS } from './decision-log.js'
import { errorReply } from './wire-errors.js'

/**
 * Serves one admin stream (`lull-coordinator status` / `explain`): one request, one answer. The answer holds ids,
 * hardware summaries, counters, times and scheduling reasons: never a payload or ciphertext.
 *
 * Access: in this open-mode version any peer may ask, and only when the coordinator runs with `--open`. When API
 * keys arrive, admin access must require an admin key.
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
      if (!coordinator.open) {
        coordinator.log.info({ peerId }, 'admin request refused: not in open mode')
        await channel.send(
          errorReply(new LullError(ErrorCode.InvalidRequest, 'the admin view is only available in open mode (--open)')),
        )
        break
      }
      const message = received.message
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
