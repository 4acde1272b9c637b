/**
 * The scheduling benchmark's simulated nodes: each a libp2p host with its own Ed25519 identity, one real
 * connection to the coordinator and a real signed certificate. On a dispatch it streams opaque chunks at a set
 * token rate and ends, as an engine would; it never opens the request (no engine, no model).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import {
  COORDINATOR_TO_NODE,
  createLullHost,
  type DispatchMessage,
  generateX25519KeyPair,
  loadOrCreateIdentity,
  MessageChannel,
  NODE_PROTOCOL,
  type NodeToCoordinator,
  signNodeCertificate,
} from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'

export interface SimulatedNodeSettings {
  nodes: number
  slots: number
  tokens: number
  tokensPerSecond: number
}

/** Tokens per chunk: nodes coalesce a few tokens per sealed chunk. */
export const TOKENS_PER_CHUNK = 4
/** The coordinator accepts this many new connections per second from one address; stay under it. */
const DIALS_PER_SECOND = 80
const HEARTBEAT_MS = 5_000
/** Nodes setting up at once (key, host, certificate, handshake). */
const PARALLEL_DIALS = 4
const DIAL_ATTEMPTS = 3

type Channel = MessageChannel<typeof COORDINATOR_TO_NODE, NodeToCoordinator>

export async function runSimulatedNodes(address: string, settings: SimulatedNodeSettings): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lull-bench-nodes-'))
  const hosts: Libp2p[] = []
  const channels: Channel[] = []
  const stop = async () => {
    for (const channel of channels) channel.abort(new Error('bench over'))
    await Promise.allSettled(hosts.map((host) => host.stop()))
    await rm(dataDir, { recursive: true, force: true })
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop())
  process.on('disconnect', () => void stop())
  const target = multiaddr(address)
  // Heartbeats from the start: a node silent for 15 s is evicted, and registering a thousand takes a while.
  setInterval(() => {
    for (const channel of channels) channel.trySend({ type: 'heartbeat', busySlots: 0, state: 'serving' })
  }, HEARTBEAT_MS)
  const started = performance.now()
  let nextIndex = 0
  const dialer = async () => {
    for (let index = nextIndex++; index < settings.nodes; index = nextIndex++) {
      // Pace the dials under the coordinator's per-address connection rate.
      const wait = started + (index * 1000) / DIALS_PER_SECOND - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      let channel: Channel | undefined
      for (let attempt = 1; channel === undefined; attempt++) {
        try {
          channel = await startNode(target, join(dataDir, String(index)), index, settings, hosts)
        } catch (error) {
          // A handshake can time out on a busy machine: try that node again, a few times.
          if (attempt >= DIAL_ATTEMPTS) throw error
        }
      }
      channels.push(channel)
      void serve(channel, settings)
    }
  }
  await Promise.all(Array.from({ length: PARALLEL_DIALS }, () => dialer()))
  process.send?.({ dialled: settings.nodes })
}

/** One simulated node: identity, host, certificate, connection and registration. */
async function startNode(
  target: ReturnType<typeof multiaddr>,
  dataDir: string,
  index: number,
  settings: SimulatedNodeSettings,
  hosts: Libp2p[],
): Promise<Channel> {
  const privateKey = await loadOrCreateIdentity(dataDir)
  const host = await createLullHost({ privateKey })
  hosts.push(host)
  const nodeId = host.peerId.toString()
  const nowMs = Date.now()
  const certificate = await signNodeCertificate(
    {
      nodeId,
      hpkePublicKey: generateX25519KeyPair().publicKey,
      modelId: 'lull-tiny',
      modelDigest: 'b'.repeat(64),
      hardware: {
        os: 'linux',
        arch: 'x64',
        cpuModel: 'simulated',
        cpuCores: 8,
        ramTotalBytes: 16 * 1024 ** 3,
        gpu: 'none',
        vramTotalBytes: 0,
      },
      notBeforeMs: nowMs - 60_000,
      notAfterMs: nowMs + 60 * 60_000,
    },
    privateKey,
  )
  const stream = await host.dialProtocol(target, NODE_PROTOCOL).catch(async (error: unknown) => {
    hosts.splice(hosts.indexOf(host), 1)
    await host.stop()
    throw error
  })
  const channel: Channel = new MessageChannel(stream, { inbound: COORDINATOR_TO_NODE })
  await channel.send({
    type: 'register',
    certificate,
    slots: settings.slots,
    // Measured rates vary between machines; the scheduler scores on them.
    benchmark: { prefillTokensPerSecond: 4_000, decodeTokensPerSecond: 200 + (index % 10) * 100 },
    agent: 'bench-simulated-node',
  })
  return channel
}

async function serve(channel: Channel, settings: SimulatedNodeSettings): Promise<void> {
  const running = new Map<string, NodeJS.Timeout>()
  const chunkEveryMs = (TOKENS_PER_CHUNK * 1000) / settings.tokensPerSecond
  const chunks = Math.ceil(settings.tokens / TOKENS_PER_CHUNK)
  const start = (dispatch: Pick<DispatchMessage, 'requestId'>) => {
    let sent = 0
    const tick = () => {
      sent++
      channel.trySend({ type: 'chunk', requestId: dispatch.requestId, data: randomBytes(64) })
      if (sent < chunks) {
        running.set(dispatch.requestId, setTimeout(tick, chunkEveryMs))
        return
      }
      running.delete(dispatch.requestId)
      channel.trySend({
        type: 'end',
        requestId: dispatch.requestId,
        usage: { promptTokens: 16, outputTokens: settings.tokens },
      })
    }
    running.set(dispatch.requestId, setTimeout(tick, chunkEveryMs))
  }
  try {
    for await (const received of channel) {
      if (!received.ok) continue
      const message = received.message
      if (message.type === 'dispatch') start(message)
      else if (message.type === 'dispatch-batch') for (const request of message.requests) start(request)
      else if (message.type === 'cancel') {
        clearTimeout(running.get(message.requestId))
        running.delete(message.requestId)
      }
    }
  } catch {
    // The link closed: the benchmark is over.
  }
}
