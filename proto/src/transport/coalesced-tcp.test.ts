import { once } from 'node:events'
import { createServer, type Server, Socket } from 'node:net'
import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { coalesceSocketWrites } from './coalesced-tcp.js'
import { createLullHost } from './host.js'

const cleanups: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  vi.restoreAllMocks()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A connected socket pair on 127.0.0.1; `received` collects what the server side reads. */
async function socketPair(): Promise<{ client: Socket; received: () => Buffer }> {
  const chunks: Buffer[] = []
  const server: Server = createServer((socket) => socket.on('data', (chunk: Buffer) => chunks.push(chunk)))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const client = new Socket()
  client.connect(port, '127.0.0.1')
  await once(client, 'connect')
  cleanups.push(
    () => new Promise((done) => server.close(done)),
    () => client.destroy(),
  )
  return { client, received: () => Buffer.concat(chunks) }
}

/** Counts the socket's calls to the stream's write implementations: one per system call handed to libuv. */
function countWrites(socket: Socket): { singles: number; batches: number[] } {
  const counts = { singles: 0, batches: [] as number[] }
  const target = socket as unknown as {
    _write: (...args: unknown[]) => void
    _writev: (chunks: unknown[], ...rest: unknown[]) => void
  }
  const single = target._write.bind(socket)
  const batch = target._writev.bind(socket)
  target._write = (...args) => {
    counts.singles++
    single(...args)
  }
  target._writev = (chunks, ...rest) => {
    counts.batches.push(chunks.length)
    batch(chunks, ...rest)
  }
  return counts
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

describe('coalesceSocketWrites', () => {
  it('sends the writes of one turn in one batch, in order, and each later turn again', async () => {
    const { client, received } = await socketPair()
    coalesceSocketWrites(client)
    const writes = countWrites(client)
    client.write(Buffer.from('one,'))
    client.write(Buffer.from('two,'))
    await Promise.resolve() // writes from promise jobs of the same turn join the batch
    client.write(Buffer.from('three,'))
    await nextTurn()
    expect(writes).toEqual({ singles: 0, batches: [3] })

    client.write(Buffer.from('four'))
    await nextTurn()
    expect(writes.singles + writes.batches.length).toBe(2)
    const deadline = Date.now() + 5_000
    while (received().toString() !== 'one,two,three,four' && Date.now() < deadline) await nextTurn()
    expect(received().toString()).toBe('one,two,three,four')
  })

  it('without it, each write is its own call (the baseline the test above differs from)', async () => {
    const { client } = await socketPair()
    const writes = countWrites(client)
    client.write(Buffer.from('one,'))
    client.write(Buffer.from('two,'))
    client.write(Buffer.from('three'))
    await nextTurn()
    expect(writes.singles + writes.batches.length).toBeGreaterThan(1)
  })

  it('lets end() flush what the turn wrote', async () => {
    const { client, received } = await socketPair()
    coalesceSocketWrites(client)
    client.write(Buffer.from('last words'))
    client.end()
    await once(client, 'finish')
    const deadline = Date.now() + 5_000
    while (received().toString() !== 'last words' && Date.now() < deadline) await nextTurn()
    expect(received().toString()).toBe('last words')
  })
})

describe('Lull hosts', () => {
  it('coalesce the writes of their TCP connections, both dialled and accepted', async () => {
    const cork = vi.spyOn(Socket.prototype, 'cork')
    const hosts: Libp2p[] = []
    const listener = await createLullHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    hosts.push(listener)
    const dialler = await createLullHost()
    hosts.push(dialler)
    cleanups.push(() => Promise.all(hosts.map((host) => host.stop())))
    const corkingSockets = () => new Set(cork.mock.contexts).size
    await dialler.dial(listener.getMultiaddrs()[0]!)
    const deadline = Date.now() + 5_000
    // The noise handshake writes on both ends: each end's socket has corked by the time the connection is open.
    while (corkingSockets() < 2 && Date.now() < deadline) await nextTurn()
    expect(corkingSockets()).toBe(2)
  })
})
