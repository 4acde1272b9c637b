import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LullClient } from '@lull/client-sdk'
import { afterEach, describe, expect, it } from 'vitest'
import { startCoordinatorAt } from './network-fixture.js'
import { type NodeProcess, startNodeProcess } from './node-process.js'
import { until } from './until.js'

async function ask(address: string): Promise<{ nodeId: string; outputTokens: number }> {
  const client = await LullClient.connect({ coordinator: address })
  try {
    const reply = await client
      .chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'Hello again' }], maxTokens: 16, seed: 3 })
      .final()
    return { nodeId: reply.nodeId, outputTokens: reply.usage.outputTokens }
  } finally {
    await client.close()
  }
}

describe('a coordinator restart', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    cleanups.length = 0
  })

  it('is survived: the node process re-registers on its own and serves again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lull-restart-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const coordinatorDir = join(dir, 'coordinator')
    let coordinator = await startCoordinatorAt(coordinatorDir, 0)
    cleanups.push(() => coordinator.stop())
    const address = coordinator.multiaddrs[0] as string
    const port = Number(/\/tcp\/(\d+)\//.exec(address)?.[1])

    const node: NodeProcess = await startNodeProcess([
      '--coordinator',
      address,
      '--when',
      'always',
      '--threads',
      '1',
      '--slots',
      '1',
      '--data-dir',
      join(dir, 'node'),
      '--log-level',
      'warn',
    ])
    cleanups.push(async () => node.kill())
    expect((await ask(address)).nodeId).toBe(node.nodeId)

    // The coordinator goes away and comes back with the same identity on the same address.
    await coordinator.stop()
    // Down long enough that the node's redials are refused a few times (its backoff grows meanwhile).
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    coordinator = await startCoordinatorAt(coordinatorDir, port)
    expect(coordinator.multiaddrs[0]).toBe(address)
    expect(coordinator.status().nodes).toHaveLength(0)

    await until(
      () => coordinator.status().nodes.some((entry) => entry.nodeId === node.nodeId),
      'the node to register with the restarted coordinator',
      30_000,
    )
    const again = await ask(address)
    expect(again.nodeId).toBe(node.nodeId)
    expect(again.outputTokens).toBeGreaterThan(0)
    // The node rode it out: it never exited.
    expect(node.child.exitCode).toBeNull()
  })
})
