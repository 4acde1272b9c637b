/**
 * The scheduling benchmark's clients: a few libp2p hosts submitting sealed requests, `concurrency` at a time, each
 * host on one long-lived client stream that carries all its requests (as the SDK's session does), each read to its
 * end.
 */
import { randomBytes } from 'node:crypto'
import type { Libp2p, Stream } from '@libp2p/interface'
import { LullClient } from '@lull/client-sdk'
import {
  CLIENT_PROTOCOL,
  type ClientToCoordinator,
  COORDINATOR_TO_CLIENT,
  createLullHost,
  createRequestId,
  encodeHeaderAad,
  encodeRequestBody,
  MessageChannel,
  type RequestHeader,
  type SubmitMessage,
  sealRequest,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'

export interface ClientSettings {
  seconds: number
  concurrency: number
  tokens: number
}

/** Distinct sealed requests, submitted round-robin (each submit gets a fresh request id). */
const POOL_SIZE = 256
const CANDIDATES = 3
const CLIENT_HOSTS = 4

export async function runClients(address: string, settings: ClientSettings): Promise<void> {
  const catalogueClient = await LullClient.connect({ coordinator: address })
  const nodes = (await catalogueClient.models()).find((model) => model.id === 'lull-tiny')?.nodes ?? []
  await catalogueClient.close()
  if (nodes.length === 0) throw new Error('the catalogue lists no nodes')
  // As many candidates as the SDK would choose: three, or every node when there are fewer.
  const candidateCount = Math.min(CANDIDATES, nodes.length)

  const pool: Array<Omit<SubmitMessage, 'requestId'>> = []
  for (let index = 0; index < POOL_SIZE; index++) {
    const candidates = new Set<(typeof nodes)[number]>()
    while (candidates.size < candidateCount) candidates.add(nodes[Math.floor(Math.random() * nodes.length)] as never)
    const body = encodeRequestBody({
      messages: [{ role: 'user', content: `Tell me about the harbour, part ${index}` }],
      maxTokens: settings.tokens,
      temperature: 0.8,
      createdAtMs: Date.now(),
      nonce: randomBytes(16),
    })
    const header: RequestHeader = {
      model: 'lull-tiny',
      maxTokens: settings.tokens,
      sizeBucket: body.byteLength,
      candidates: [...candidates].map((node) => node.nodeId),
      priority: 0,
    }
    const { sealed } = await sealRequest(
      body,
      [...candidates].map((node) => ({ nodeId: node.nodeId, publicKey: node.certificate.hpkePublicKey })),
      encodeHeaderAad(header),
    )
    pool.push({ type: 'submit', header, sealed })
  }

  const hosts: Libp2p[] = []
  for (let index = 0; index < CLIENT_HOSTS; index++) hosts.push(await createLullHost())
  const target = multiaddr(address)
  // One warm connection and one session stream per host before the clock starts.
  const sessions = await Promise.all(
    hosts.map(async (host) => openSession(await host.dialProtocol(target, CLIENT_PROTOCOL))),
  )

  const latenciesMs: number[] = []
  const errorCodes: Record<string, number> = {}
  let completed = 0
  let failed = 0
  let next = 0
  const started = performance.now()
  const endAt = started + settings.seconds * 1000
  const worker = async (index: number) => {
    const session = sessions[index % sessions.length] as Session
    while (performance.now() < endAt) {
      const request = pool[next++ % pool.length] as Omit<SubmitMessage, 'requestId'>
      const sentAt = performance.now()
      const outcome = await session.submit({ ...request, requestId: createRequestId() })
      if (outcome === 'end') {
        completed++
        latenciesMs.push(performance.now() - sentAt)
      } else {
        failed++
        errorCodes[outcome] = (errorCodes[outcome] ?? 0) + 1
      }
    }
  }
  await Promise.all(Array.from({ length: settings.concurrency }, (_, index) => worker(index)))
  const seconds = (performance.now() - started) / 1000
  latenciesMs.sort((a, b) => a - b)
  const percentile = (p: number) =>
    latenciesMs[Math.min(latenciesMs.length - 1, Math.ceil((p / 100) * latenciesMs.length) - 1)] ?? Number.NaN
  process.send?.({
    completed,
    failed,
    errorCodes,
    seconds,
    latencyP50Ms: percentile(50),
    latencyP99Ms: percentile(99),
  })
  await Promise.allSettled(hosts.map((host) => host.stop()))
  process.exit(0)
}

interface Session {
  /** Submits on the session; resolves with how the request ended: `end`, an error code, or `closed`. */
  submit(message: SubmitMessage): Promise<string>
}

/**
 * A client stream carrying many requests: each message goes to the request it names. The SDK's RequestSession does
 * this for real (and is internal to it); the benchmark submits pre-sealed requests, so it keeps only what it counts.
 */
function openSession(stream: Stream): Session {
  const channel = new MessageChannel<typeof COORDINATOR_TO_CLIENT, ClientToCoordinator>(stream, {
    inbound: COORDINATOR_TO_CLIENT,
  })
  const waiting = new Map<string, (outcome: string) => void>()
  void (async () => {
    try {
      for await (const received of channel) {
        if (!received.ok) break
        const message = received.message
        if (message.type !== 'end' && message.type !== 'error') continue
        const requestId = message.requestId ?? ''
        waiting.get(requestId)?.(message.type === 'end' ? 'end' : message.code)
        waiting.delete(requestId)
      }
    } catch {
      // The stream broke: every request still waiting is lost.
    }
    for (const settle of waiting.values()) settle('closed')
    waiting.clear()
  })()
  return {
    submit: (message) =>
      new Promise((resolve) => {
        waiting.set(message.requestId, resolve)
        channel.send(message).catch(() => {
          waiting.delete(message.requestId)
          resolve('closed')
        })
      }),
  }
}
