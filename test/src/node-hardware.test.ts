import { availableParallelism, totalmem } from 'node:os'
import type { LullClient } from '@lull/client-sdk'
import { type HeartbeatMessage, NODE_TO_COORDINATOR, type RegisterMessage } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { messageOf } from './frames.js'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const MIB = 1024 ** 2

describe('hardware a node advertises', () => {
  let network: TestNetwork
  let client: LullClient
  const registrations: RegisterMessage[] = []
  const heartbeats: HeartbeatMessage[] = []

  beforeAll(async () => {
    network = await startTestNetwork({
      nodes: 1,
      frameObserver: (direction, payload) => {
        if (direction !== 'in') return
        const message = messageOf(payload, NODE_TO_COORDINATOR)
        if (message?.type === 'register') registrations.push(message)
        if (message?.type === 'heartbeat') heartbeats.push(message)
      },
    })
    client = await network.client()
    await network.waitForNodes(client, 1)
  })
  afterAll(async () => {
    await network?.stop()
  })

  const ask = (seed: number) =>
    client.chat({ model: 'lull-tiny', messages: [{ role: 'user', content: 'Hi' }], maxTokens: 4, seed }).final()

  it('signs the static facts into its certificate: OS, arch, CPU model and physical cores, RAM, GPU kind and VRAM', () => {
    const hardware = registrations[0]?.certificate.hardware
    expect(hardware).toMatchObject({ os: process.platform, arch: process.arch, ramTotalBytes: totalmem() })
    expect(hardware?.cpuModel.length).toBeGreaterThan(0)
    expect(hardware?.cpuCores).toBeGreaterThanOrEqual(1)
    expect(hardware?.cpuCores).toBeLessThanOrEqual(availableParallelism())
    // The GPU kind is the backend node-llama-cpp loaded the model with (this machine's, whatever it is).
    expect(['metal', 'cuda', 'vulkan', 'none']).toContain(hardware?.gpu)
    if (hardware?.gpu === 'none') expect(hardware.vramTotalBytes).toBe(0)
    else expect(hardware?.vramTotalBytes).toBeGreaterThan(0)
    // The coordinator shows the operator the same picture.
    const listed = network.coordinator.status().nodes[0]
    expect(listed?.hardware).toEqual(hardware)
  })

  it('reads free RAM and load afresh for every heartbeat', async () => {
    await ask(1)
    const before = heartbeats.at(-1)
    // Take (and touch) memory between two heartbeats: the next one must report the new free figure, not a cached one.
    const ballast = Buffer.alloc(512 * MIB, 1)
    await ask(2)
    const after = heartbeats.at(-1)
    expect(ballast.at(-1)).toBe(1)
    for (const heartbeat of [before, after]) {
      expect(heartbeat?.ramFreeBytes).toBeGreaterThan(0)
      expect(heartbeat?.ramFreeBytes).toBeLessThanOrEqual(totalmem())
      expect(heartbeat?.loadAverage).toBeGreaterThanOrEqual(0)
    }
    expect(after).not.toBe(before)
    expect(after?.ramFreeBytes).not.toBe(before?.ramFreeBytes)
  })
})
