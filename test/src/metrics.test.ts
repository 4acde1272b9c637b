import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const CANARY = 'canary-metrics-5b2e9d'
let network: TestNetwork

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 2, slots: 2, coordinatorOptions: { metricsPort: 0 } })
})

afterAll(async () => {
  await network?.stop()
})

function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((entry) => entry.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.split(' ')[1])
}

describe('Prometheus /metrics', () => {
  it('reports nodes, slots and request outcomes, and nothing of what was asked', async () => {
    const url = network.coordinator.metrics?.url
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const client = await network.client()
    await network.waitForNodes(client, 2)
    let outputTokens = 0
    for (let index = 0; index < 3; index++) {
      const reply = await client
        .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: `${CANARY} ${index}` }], maxTokens: 8 })
        .final()
      outputTokens += reply.usage.outputTokens
    }

    const response = await fetch(url as string)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toContain('text/plain')
    const text = await response.text()
    expect(text).toContain('lull_nodes{state="serving"} 2')
    expect(sample(text, 'lull_slots')).toBe(4)
    expect(sample(text, 'lull_requests_served_total')).toBe(3)
    expect(outputTokens).toBeGreaterThan(0)
    expect(sample(text, 'lull_output_tokens_total')).toBe(outputTokens)
    expect(sample(text, 'lull_output_tokens_per_second')).toBeGreaterThan(0)
    expect(text).toMatch(/lull_time_to_first_token_ms\{quantile="0.5"\} \d/)
    expect(text).toMatch(/lull_coordinator_process_resident_memory_bytes \d/)
    expect(text).not.toContain(CANARY)

    expect((await fetch(url!.replace('/metrics', '/other'))).status).toBe(404)
  })
})
