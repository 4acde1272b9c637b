import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { AbortError, LullClient } from '@lull/client-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ProcessNetwork, startProcessNetwork } from './process-network.js'

/**
 * The SDK opens the stream for the next request ahead of time (the spare). A request that must wait for a spare
 * still opening — here because the coordinator process is frozen with SIGSTOP, so the connection stays up but
 * nothing answers — stops waiting when its signal aborts, instead of sitting out libp2p's 10 s protocol
 * negotiation timeout.
 */
let stateDir: string
let network: ProcessNetwork

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'lull-spare-'))
  network = await startProcessNetwork({ stateDir, nodes: 1, slots: 1 })
  await network.waitForNodes(1)
}, 180_000)

afterAll(async () => {
  await network?.stop()
  await rm(stateDir, { recursive: true, force: true })
})

const REQUEST = { model: 'lull-tiny', messages: [{ role: 'user' as const, content: 'Hello' }], maxTokens: 4 }

function abortedAfter(ms: number): AbortSignal {
  const controller = new AbortController()
  setTimeout(() => controller.abort(), ms)
  return controller.signal
}

describe('the spare stream', () => {
  it('a request aborted while the spare is still opening ends at once with AbortError', async () => {
    const client = await LullClient.connect({ coordinator: network.address, catalogueMaxAgeMs: 600_000 })
    const pid = network.coordinator.pid as number
    try {
      // Served normally; afterwards an open spare waits for the next request.
      expect(await client.chat(REQUEST).text()).not.toBe('')

      process.kill(pid, 'SIGSTOP')
      // This request takes the open spare and gets no answer; when it ends, the next spare is started and cannot open.
      await expect(client.chat({ ...REQUEST, signal: abortedAfter(200) }).text()).rejects.toBeInstanceOf(AbortError)
      // This one has to wait for that spare. Its abort must end the wait: without that it would take libp2p's
      // 10 s negotiation timeout (5 s here is 25× what the abort needs, and half of that timeout).
      const outcome = await Promise.race([
        client
          .chat({ ...REQUEST, signal: abortedAfter(200) })
          .text()
          .then(
            () => 'answered',
            (error: unknown) => error,
          ),
        sleep(5_000).then(() => 'still waiting'),
      ])
      expect(outcome).toBeInstanceOf(AbortError)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    // The coordinator back: the client serves again on its own.
    expect(await client.chat(REQUEST).text()).not.toBe('')
    await client.close()
  }, 60_000)
})
