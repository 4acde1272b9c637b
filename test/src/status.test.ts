import { execFile } from 'node:child_process'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import type { StatusMessage } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const run = promisify(execFile)
const COORDINATOR = join(resolve(import.meta.dirname, '..', '..'), 'coordinator/dist/cli.js')
const PROMPT = 'Describe the harbour at dawn. canary-5d21e0b4'

async function cli(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [COORDINATOR, ...args], { timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

let network: TestNetwork
let requestId: string
let outputTokens: number

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 2, slots: 2 })
  const client = await network.client()
  await network.waitForNodes(client, 2)
  const reply = await client
    .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: PROMPT }], maxTokens: 16 })
    .final()
  requestId = reply.requestId
  outputTokens = reply.usage.outputTokens
})

afterAll(async () => {
  await network?.stop()
})

describe('lull-coordinator status', () => {
  it('--json lists both nodes and the network totals, and no payload', async () => {
    const { code, stdout, stderr } = await cli(['status', '--coordinator', network.address, '--json'])
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const status = JSON.parse(stdout) as StatusMessage
    expect(status.type).toBe('status')
    expect(status.nodes.map((node) => node.nodeId).sort()).toEqual(network.nodes.map((node) => node.nodeId).sort())
    for (const node of status.nodes) {
      expect(node).toMatchObject({ modelId: 'lull-tiny', state: 'serving', slots: 2, busySlots: 0, errors: 0 })
      expect(node.hardware.cpuCores).toBeGreaterThan(0)
      expect(node.lastSeenMs).toBeGreaterThan(0)
    }
    expect(status.nodes.reduce((sum, node) => sum + node.requestsServed, 0)).toBe(1)
    // The node that answered has a time to first token for the scheduler to weigh; the other has none yet.
    const served = status.nodes.find((node) => node.requestsServed === 1)
    expect(served?.ttftMs).toBeGreaterThanOrEqual(0)
    expect(status.nodes.find((node) => node.requestsServed === 0)?.ttftMs).toBeUndefined()
    // Tokens served, as the node signed them: in all and over the last minute; nothing on the idle node.
    expect(outputTokens).toBeGreaterThan(0)
    expect(served?.outputTokensServed).toBe(outputTokens)
    expect(served?.recentTokensPerSecond).toBeGreaterThan(0)
    expect(status.nodes.find((node) => node.requestsServed === 0)).toMatchObject({
      outputTokensServed: 0,
      recentTokensPerSecond: 0,
    })
    expect(status.totals.outputTokensServed).toBe(outputTokens)
    // The network's rate is averaged since the coordinator started, the node's since it registered (later).
    expect(status.totals.tokensPerSecond).toBeGreaterThan(0)
    expect(status.totals.tokensPerSecond).toBeLessThanOrEqual(served?.recentTokensPerSecond ?? 0)
    // The live part of each node's hardware, from its heartbeats.
    for (const node of status.nodes) {
      expect(node.ramFreeBytes).toBeGreaterThan(0)
      expect(node.ramFreeBytes).toBeLessThanOrEqual(node.hardware.ramTotalBytes)
      expect(node.loadAverage).toBeGreaterThanOrEqual(0)
    }
    expect(status.totals).toMatchObject({ nodes: 2, servingNodes: 2, slots: 4, busySlots: 0, requestsPerMinute: 1 })
    expect(status.totals.ttftP50Ms).toBeGreaterThanOrEqual(0)
    expect(status.totals.ttftP95Ms).toBeGreaterThanOrEqual(status.totals.ttftP50Ms ?? 0)
    expect(stdout).not.toContain('canary-5d21e0b4')
    expect(stdout).not.toContain('harbour')
  })

  it('prints a table with every node for people', async () => {
    const { code, stdout } = await cli(['status', '--coordinator', network.address])
    expect(code).toBe(0)
    for (const node of network.nodes) expect(stdout).toContain(node.nodeId)
    expect(stdout).toContain('lull-tiny')
    expect(stdout).toMatch(/serving/)
    expect(stdout).toMatch(/0\/2/)
    expect(stdout).toMatch(/time to first token.*p50 \d+ ms, p95 \d+ ms/)
    expect(stdout).toMatch(/2 \(2 serving\)/)
    expect(stdout).toMatch(/GiB \([\d.]+ GiB free\), load [\d.]+/)
    expect(stdout).toMatch(new RegExp(`output tokens/s.*[\\d.]+ \\(${outputTokens} tokens served in all\\)`))
  })

  it('explain shows the decisions for a recent request, with reasons', async () => {
    const { code, stdout, stderr } = await cli(['explain', requestId, '--coordinator', network.address, '--json'])
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
    const explained = JSON.parse(stdout) as { requestId: string; decisions: Array<{ event: string; reason: string }> }
    expect(explained.requestId).toBe(requestId)
    expect(explained.decisions.map((decision) => decision.event)).toEqual(['placed', 'finished'])
    expect(explained.decisions[0]?.reason).toMatch(/score [\d.]+ = \d+\/\d+ free × speed/)
    // An id that starts with a dash (older clients made some) goes after --.
    const dashed = await cli(['explain', '--coordinator', network.address, '--', '-no-such-request'])
    expect(dashed.stderr).toMatch(/no recent request/)
    const unknown = await cli(['explain', 'no-such-request-id', '--coordinator', network.address])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/no recent request/)
  })

  it('fails clearly when the coordinator cannot be reached', async () => {
    const { code, stderr } = await cli([
      'status',
      '--coordinator',
      '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN',
    ])
    expect(code).toBe(1)
    expect(stderr).toMatch(/cannot get the status/)
  })

  it('--help says who may read the admin view', async () => {
    const { stdout } = await cli(['start', '--help'])
    expect(stdout.replace(/\s+/g, ' ')).toMatch(/any peer may read the admin view/)
    const status = await cli(['status', '--help'])
    expect(status.stdout).toMatch(/--watch/)
    expect(status.stdout.replace(/\s+/g, ' ')).toMatch(/Needs an admin API key unless the coordinator runs --open/)
  })
})
