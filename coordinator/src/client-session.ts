import type { Stream } from '@libp2p/interface'
import {
  CLIENT_TO_COORDINATOR,
  type CoordinatorToClient,
  ErrorCode,
  LullError,
  MAX_REQUESTS_PER_CLIENT_STREAM,
  MessageChannel,
} from '@lull/proto'
import type { Coordinator } from './coordinator.js'
import type { ClientReplies, Job } from './job.js'
import { errorReply } from './wire-errors.js'

/**
 * Serves one client stream. A stream is long-lived: it carries catalogue requests and any number of requests, one
 * after another or up to MAX_REQUESTS_PER_CLIENT_STREAM at once, each message naming its request (the client's
 * request id, unique among the stream's requests in flight). Every answer's sealed chunks come back on the stream
 * that submitted it, and a cancel on it stops one request. A client that closes or resets the stream cancels every
 * request still on it. `peerId` is the client connection's remote peer.
 */
export async function handleClientStream(coordinator: Coordinator, stream: Stream, peerId: string): Promise<void> {
  const channel = new MessageChannel<typeof CLIENT_TO_COORDINATOR, CoordinatorToClient>(stream, {
    inbound: CLIENT_TO_COORDINATOR,
    ...(coordinator.frameObserver === undefined ? {} : { observer: coordinator.frameObserver }),
  })
  /** The stream's requests in flight, by the client's request id. */
  const jobs = new Map<string, Job>()
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
          channel.trySend(key instanceof LullError ? errorReply(key) : coordinator.catalogue())
          break
        }
        case 'submit': {
          const { requestId } = message
          const refusal = jobs.has(requestId)
            ? new LullError(ErrorCode.UnexpectedMessage, 'a request with this id is already in flight on this stream')
            : jobs.size >= MAX_REQUESTS_PER_CLIENT_STREAM
              ? new LullError(
                  ErrorCode.UnexpectedMessage,
                  `a client stream carries at most ${MAX_REQUESTS_PER_CLIENT_STREAM} requests at once; open another stream`,
                )
              : undefined
          if (refusal !== undefined) {
            channel.trySend(errorReply(refusal, requestId))
            break
          }
          let job: Job | undefined
          const replies: ClientReplies = {
            trySend: (reply) => channel.trySend(reply),
            release: () => {
              if (job !== undefined && jobs.get(requestId) === job) jobs.delete(requestId)
            },
          }
          // Fair sharing is per client: the connection's peer id (with API keys, the key's account).
          const clientId = coordinator.accounts.accountOf(message.apiKey) ?? peerId
          job = coordinator.submit(replies, message, clientId)
          // A request refused at once has already ended.
          if (job.status !== 'finished') jobs.set(requestId, job)
          break
        }
        case 'cancel': {
          const job = jobs.get(message.requestId)
          if (job !== undefined) coordinator.cancel(job)
          break
        }
      }
    }
  } finally {
    for (const job of [...jobs.values()]) coordinator.cancel(job)
    jobs.clear()
    // The client is done with the stream (or it broke): this side closes too.
    void channel.close()
  }
}
