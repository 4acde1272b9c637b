import {
  ADMIN_PROTOCOL,
  type AdminToCoordinator,
  COORDINATOR_TO_ADMIN,
  type CoordinatorToAdmin,
  createLullHost,
  type ExplainMessage,
  errorFromWire,
  MessageChannel,
  type StatusMessage,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'

/** Asks a coordinator's admin protocol one question and returns its answer. */
async function ask(address: string, request: AdminToCoordinator, timeoutMs: number): Promise<CoordinatorToAdmin> {
  const host = await createLullHost()
  try {
    const signal = AbortSignal.timeout(timeoutMs)
    const stream = await host.dialProtocol(multiaddr(address), ADMIN_PROTOCOL, { signal })
    const channel = new MessageChannel<typeof COORDINATOR_TO_ADMIN, AdminToCoordinator>(stream, {
      inbound: COORDINATOR_TO_ADMIN,
    })
    try {
      await channel.send(request)
      for await (const received of channel) {
        if (!received.ok) throw received.error
        if (received.message.type === 'error') throw errorFromWire(received.message.code, received.message.message)
        return received.message
      }
      throw new Error('the coordinator closed the admin stream without answering')
    } finally {
      await channel.close()
    }
  } finally {
    await host.stop()
  }
}

/** `apiKey`: a key with the admin role; not needed by a coordinator in open mode. */
export async function fetchStatus(address: string, timeoutMs = 10_000, apiKey?: string): Promise<StatusMessage> {
  const answer = await ask(address, { type: 'status-request', ...(apiKey === undefined ? {} : { apiKey }) }, timeoutMs)
  if (answer.type !== 'status') throw new Error(`expected a status answer, got "${answer.type}"`)
  return answer
}

export async function fetchExplain(
  address: string,
  requestId: string,
  timeoutMs = 10_000,
  apiKey?: string,
): Promise<ExplainMessage> {
  const answer = await ask(
    address,
    { type: 'explain-request', requestId, ...(apiKey === undefined ? {} : { apiKey }) },
    timeoutMs,
  )
  if (answer.type !== 'explain') throw new Error(`expected an explain answer, got "${answer.type}"`)
  return answer
}
