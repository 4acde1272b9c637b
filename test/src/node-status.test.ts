import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import type { IdleSignals } from '@lull/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { until } from './until.js'

const run = promisify(execFile)
const NODE_CLI = join(resolve(import.meta.dirname, '..', '..'), 'node/dist/bin.cjs')
const CANARY = 'status-canary-5d1e'

async function status(dataDir: string, json: boolean) {
  try {
    const { stdout } = await run(process.execPath, [
      NODE_CLI,
      'status',
      '--data-dir',
      dataDir,
      ...(json ? ['--json'] : []),
    ])
    return { code: 0, stdout }
  } catch (error) {
    const failed = error as { code: number; stdout: string }
    return { code: failed.code, stdout: failed.stdout }
  }
}

describe('lull-node status', () => {
  let network: TestNetwork
  let nodeDir: string
  const signals: IdleSignals = {
    userIdleSeconds: 900,
    onBattery: false,
    batteryPercent: 87,
    thermalPressure: null,
    otherCpuFraction: 0.1,
  }

  beforeAll(async () => {
    network = await startTestNetwork({
      nodes: 1,
      nodeOptions: () => ({
        when: 'idle',
        idleSignals: { notes: ['a test note'], read: async () => signals },
        statusIntervalMs: 200,
      }),
    })
    nodeDir = join(network.dataDir, 'node-0')
  })

  afterAll(async () => {
    await network?.stop()
  })

  it('shows a running node: state, signals, model, slots and counts, and never a payload', async () => {
    const node = network.nodes[0]
    if (node === undefined) throw new Error('no node')
    const client = await network.client()
    await network.waitForNodes(client, 1)
    const reply = await client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: `Say ${CANARY}` }], maxTokens: 16, seed: 3 })
      .final()
    await until(async () => {
      const { stdout } = await status(nodeDir, true)
      return (JSON.parse(stdout) as { stats: { requestsServed: number } }).stats.requestsServed >= 1
    }, 'the status file to count the request')

    const { code, stdout } = await status(nodeDir, true)
    expect(code).toBe(0)
    const report = JSON.parse(stdout)
    expect(report).toMatchObject({
      running: true,
      pid: process.pid,
      nodeId: node.nodeId,
      state: 'serving',
      when: 'idle',
      signals,
      notes: ['a test note'],
      model: { id: 'lull-tiny', sha256: node.model.sha256 },
      slots: { total: node.slots, busy: 0 },
      stats: { requestsServed: 1, outputTokens: reply.usage.outputTokens },
      coordinator: { address: network.address, connected: true },
      hardware: { os: process.platform, cpuCores: node.hardware.cpuCores },
    })
    expect(report.uptimeMs).toBeGreaterThan(0)
    expect(report.hardware.ramFreeBytes).toBeGreaterThan(0)

    const human = await status(nodeDir, false)
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/^state {6}serving, for /m)
    expect(human.stdout).toContain('lull-tiny (sha256 ')
    expect(human.stdout).toContain('1 requests')
    expect(human.stdout).toContain('battery 87%')
    expect(human.stdout).toContain('thermal pressure unavailable')

    const file = await readFile(join(nodeDir, 'status.json'), 'utf8')
    expect(file).not.toContain(CANARY)
    if (reply.text.trim().length >= 8) expect(file).not.toContain(reply.text.trim())
  })

  it('says so when no node is running there', async () => {
    const missing = await status(join(network.dataDir, 'nowhere'), true)
    expect(missing.code).toBe(3)
    expect(JSON.parse(missing.stdout)).toMatchObject({ running: false })

    const node = network.nodes[0]
    await node?.stop()
    const { code, stdout } = await status(nodeDir, true)
    expect(code).toBe(3)
    expect(JSON.parse(stdout)).toMatchObject({ running: false, state: 'offline' })
    const human = await status(nodeDir, false)
    expect(human.stdout).toMatch(/^state {6}offline/m)
  })
})
