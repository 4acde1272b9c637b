/**
 * The scheduling benchmark's baseline: what libp2p alone costs per message on this machine. A bare Lull host (TCP,
 * noise, yamux, coalesced writes; no codec, no validation, no logic) echoes every byte it receives on a long-lived
 * stream; the clients keep `concurrency` messages in flight over a few connections, as the benchmark's clients do.
 * The echoing process's CPU time per message (received and sent back) is the floor under any protocol built on
 * this transport, measured in the same run as Lull's own cost per request.
 */
import type { Libp2p, Stream, StreamMessageEvent } from '@libp2p/interface'
import { createLullHost } from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'

export const ECHO_PROTOCOL = '/lull-bench/echo/1.0.0'
/** About the size of a relayed chunk message in the benchmark (64 bytes of ciphertext, framed and packed). */
export const ECHO_MESSAGE_BYTES = 128
const ECHO_HOSTS = 4

/** Echoes every byte of every stream on ECHO_PROTOCOL back to its sender. */
export async function serveEcho(host: Libp2p): Promise<void> {
  await host.handle(
    ECHO_PROTOCOL,
    (stream: Stream) => {
      stream.addEventListener('message', (event: StreamMessageEvent) => {
        stream.send(event.data)
      })
    },
    { maxInboundStreams: ECHO_HOSTS },
  )
}

export interface EchoResult {
  messages: number
  seconds: number
}

/** Keeps `concurrency` messages in flight to the echo host for `seconds`; reports how many came back. */
export async function runEchoClients(address: string, settings: { seconds: number; concurrency: number }) {
  const hosts: Libp2p[] = []
  for (let index = 0; index < ECHO_HOSTS; index++) hosts.push(await createLullHost())
  const streams = await Promise.all(hosts.map((host) => host.dialProtocol(multiaddr(address), ECHO_PROTOCOL)))
  const message = new Uint8Array(ECHO_MESSAGE_BYTES).fill(7)
  let messages = 0
  let running = true
  const started = performance.now()
  for (const [index, stream] of streams.entries()) {
    let pendingBytes = 0
    stream.addEventListener('message', (event: StreamMessageEvent) => {
      pendingBytes += event.data.byteLength
      // Each message that came back whole is replaced by a new one while the clock runs.
      while (pendingBytes >= ECHO_MESSAGE_BYTES) {
        pendingBytes -= ECHO_MESSAGE_BYTES
        messages++
        if (running) stream.send(message)
      }
    })
    const inFlight =
      Math.floor(settings.concurrency / streams.length) + (index < settings.concurrency % streams.length ? 1 : 0)
    for (let sent = 0; sent < inFlight; sent++) stream.send(message)
  }
  await new Promise((resolve) => setTimeout(resolve, settings.seconds * 1000))
  running = false
  const result: EchoResult = { messages, seconds: (performance.now() - started) / 1000 }
  process.send?.(result)
  await Promise.allSettled(hosts.map((host) => host.stop()))
  process.exit(0)
}
