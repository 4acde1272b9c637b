import type { Libp2p, Stream } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { createLullHost } from './host.js'

const PROTOCOL = '/lull-test/window/1'
/** yamux's initial receive window per stream (the hosts leave it at its default). */
const INITIAL_WINDOW_BYTES = 256 * 1024
const MESSAGE_BYTES = 1024

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A stream from one Lull host to another whose handler counts the bytes it receives. */
async function openCountedStream(): Promise<{ stream: Stream; received: () => number }> {
  const listener: Libp2p = await createLullHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const dialler: Libp2p = await createLullHost()
  cleanups.push(() => Promise.all([listener.stop(), dialler.stop()]))
  let received = 0
  await listener.handle(PROTOCOL, (stream) => {
    stream.addEventListener('message', (event) => {
      received += event.data.byteLength
    })
  })
  const stream = await dialler.dialProtocol(listener.getMultiaddrs()[0]!, PROTOCOL)
  return { stream, received: () => received }
}

/** The sender's remaining window on a yamux stream (yamux's own field; not part of libp2p's Stream interface). */
function sendWindow(stream: Stream): number {
  const window = (stream as unknown as { sendWindowCapacity?: number }).sendWindowCapacity
  if (typeof window !== 'number') throw new Error('not a yamux stream: no sendWindowCapacity')
  return window
}

describe('yamux window updates (patches/@libp2p+yamux+8.0.3.patch)', () => {
  it('are sent once half the window is used, not after every data frame', async () => {
    const { stream, received } = await openCountedStream()
    // Twenty frames, well under half the window, each read by the other side at once.
    for (let index = 0; index < 20; index++) {
      stream.send(new Uint8Array(MESSAGE_BYTES))
      await new Promise((resolve) => setImmediate(resolve))
    }
    await until('the listener to read 20 frames', () => received() === 20 * MESSAGE_BYTES)
    await new Promise((resolve) => setTimeout(resolve, 100)) // time for any update to arrive
    // Unpatched yamux answers each frame with an update, and the window is back to full by now.
    expect(sendWindow(stream)).toBe(INITIAL_WINDOW_BYTES - 20 * MESSAGE_BYTES)

    // Past half the window the receiver grants more, so a sender never stalls on a reader that keeps up.
    const total = 400
    for (let index = 20; index < total; index++) {
      if (!stream.send(new Uint8Array(MESSAGE_BYTES))) await stream.onDrain()
    }
    await until(`the listener to read ${total} frames`, () => received() === total * MESSAGE_BYTES)
    expect(total * MESSAGE_BYTES).toBeGreaterThan(INITIAL_WINDOW_BYTES)
    await until('a window update', () => sendWindow(stream) > INITIAL_WINDOW_BYTES / 2)
  })
})
