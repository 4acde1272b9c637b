import { CLIENT_PROTOCOL } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

/**
 * The SDK opens one stream per request on its held connection, plus one spare opened ahead of the next request.
 * Streams must not pile up: the coordinator refuses streams past its per-connection limit, so a leak would turn
 * into failed requests after a few hundred.
 */
let network: TestNetwork

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 1, slots: 4 })
})

afterAll(async () => {
  await network?.stop()
})

/** Client streams open on the coordinator's side, over all its connections. */
function openClientStreams(): number {
  return network.coordinator.host
    .getConnections()
    .flatMap((connection) => connection.streams)
    .filter((stream) => stream.protocol === CLIENT_PROTOCOL && stream.status === 'open').length
}

describe('client streams', () => {
  it('concurrent requests leave no streams behind but the one spare', async () => {
    const client = await network.client()
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, index) =>
          client
            .chat({
              model: 'lull-tiny',
              messages: [{ role: 'user', content: `Round ${round}, ${index}` }],
              maxTokens: 4,
            })
            .text(),
        ),
      )
      expect(answers.every((text) => text.length > 0)).toBe(true)
    }
    const deadline = Date.now() + 5_000
    while (openClientStreams() > 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(openClientStreams()).toBeLessThanOrEqual(1)
  })
})
