import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { AbortError, LullClient } from '@lull/client-sdk'
import { MAX_REQUESTS_PER_CLIENT_STREAM } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ProcessNetwork, startProcessNetwork } from './process-network.js'

/**
 * The SDK sends its requests on a long-lived stream (a session) and opens another when one is full. With the
 * coordinator process frozen (SIGSTOP: the connection stays up but nothing answers), a request on the session, and
 * one that must wait for a new session to open, both stop when their signal aborts, instead of sitting out the
 * request timeout or libp2p's 10 s protocol negotiation timeout; and the session serves again once it thaws.
 */
let stateDir: string
let network: ProcessNetwork

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'lull-session-'))
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

describe('the session', () => {
  it('requests aborted on a frozen coordinator end at once, on the session and waiting for a new one', async () => {
    const client = await LullClient.connect({ coordinator: network.address, catalogueMaxAgeMs: 600_000 })
    const pid = network.coordinator.pid as number
    try {
      // Served normally; afterwards the session waits for the next request.
      expect(await client.chat(REQUEST).text()).not.toBe('')

      process.kill(pid, 'SIGSTOP')
      // A full session's worth go on the open session and get no answer; one more has to wait for a new session,
      // which cannot open. Each abort must end its wait: without that the last would take libp2p's 10 s
      // negotiation timeout (5 s here is 25× what the abort needs, and half of that timeout).
      const outcomes = await Promise.race([
        Promise.all(
          Array.from({ length: MAX_REQUESTS_PER_CLIENT_STREAM + 1 }, () =>
            client
              .chat({ ...REQUEST, signal: abortedAfter(200) })
              .text()
              .then(
                () => 'answered',
                (error: unknown) => error,
              ),
          ),
        ),
        sleep(5_000).then(() => 'still waiting'),
      ])
      expect(Array.isArray(outcomes)).toBe(true)
      for (const outcome of outcomes) expect(outcome).toBeInstanceOf(AbortError)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    // The coordinator back: the client serves again on its own.
    expect(await client.chat(REQUEST).text()).not.toBe('')
    await client.close()
  }, 60_000)
})
