import { DecryptionError, LullClient, NotARecipientError, StreamTruncatedError } from '@lull/client-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HostileCoordinator } from './hostile-coordinator.js'
import { type HostileNetwork, startHostileNetwork } from './hostile-network.js'

let network: HostileNetwork
let hostile: HostileCoordinator

beforeAll(async () => {
  network = await startHostileNetwork(2)
  hostile = network.hostile
})

afterAll(async () => {
  await network?.stop()
})

async function ask(options: { candidates?: number } = {}): Promise<{ text: string; error: unknown }> {
  const client = await LullClient.connect({ coordinator: hostile.address, ...options })
  let text = ''
  try {
    for await (const event of client.chat({
      model: 'lull-tiny',
      messages: [{ role: 'user', content: 'Tell me a story' }],
      maxTokens: 32,
      seed: 7,
    })) {
      if (event.type === 'text-delta') text += event.text
    }
    return { text, error: undefined }
  } catch (error) {
    return { text, error }
  } finally {
    await client.close()
  }
}

describe('a client facing a hostile coordinator', () => {
  it('gets an answer when the coordinator relays honestly', async () => {
    hostile.mode = 'honest'
    const { text, error } = await ask()
    expect(error).toBeUndefined()
    expect(text.length).toBeGreaterThan(0)
  })

  it('gets a DecryptionError and no text when a bit of a sealed chunk is flipped', async () => {
    hostile.mode = 'flip-bit'
    const { text, error } = await ask()
    expect(error).toBeInstanceOf(DecryptionError)
    expect((error as DecryptionError).code).toBe('decryption-failed')
    expect(text).toBe('')
  })

  it('gets a StreamTruncatedError, not a complete answer, when the final chunk is dropped', async () => {
    hostile.mode = 'drop-final'
    const { error } = await ask()
    expect(error).toBeInstanceOf(StreamTruncatedError)
    const client = await LullClient.connect({ coordinator: hostile.address })
    try {
      await expect(
        client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'Hi' }], maxTokens: 8 }).final(),
      ).rejects.toBeInstanceOf(StreamTruncatedError)
    } finally {
      await client.close()
    }
  })

  it('gets the whole answer, without resuming it, when the stream closes after the final chunk but before end', async () => {
    const client = await LullClient.connect({ coordinator: hostile.address })
    try {
      // Room for the answer to end on its own (`stop`), so a resume would have budget left to add text.
      const request = {
        model: 'lull-tiny',
        messages: [{ role: 'user' as const, content: 'Tell me a story' }],
        maxTokens: 2_000,
        seed: 7,
      }
      hostile.mode = 'honest'
      const honest = await client.chat(request).final()
      expect(honest.finishReason).toBe('stop')
      hostile.mode = 'drop-end'
      const dispatches: string[] = []
      const reply = await client
        .chat({ ...request, onDispatched: ({ requestId }) => dispatches.push(requestId) })
        .final()
      expect(reply.text).toBe(honest.text)
      expect(reply.finishReason).toBe('stop')
      expect(reply.usage).toEqual(honest.usage)
      // One request: the authenticated final chunk said the answer was complete, so nothing was resumed.
      expect(dispatches).toHaveLength(1)
    } finally {
      await client.close()
    }
  })

  it('gets a NotARecipientError and no text when the request is sent to a node it was not sealed for', async () => {
    hostile.mode = 'misroute'
    const { text, error } = await ask({ candidates: 1 })
    expect(error).toBeInstanceOf(NotARecipientError)
    expect((error as NotARecipientError).code).toBe('not-a-recipient')
    expect(text).toBe('')
  })
})
