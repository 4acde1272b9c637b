import { availableParallelism, totalmem } from 'node:os'
import { describe, expect, it } from 'vitest'
import {
  availableMemoryBytes,
  defaultThreads,
  describeCpu,
  describeHardware,
  engineThreadsFor,
  liveHardware,
} from './hardware.js'

describe('hardware', () => {
  it('advertises static facts with physical cores, and the engine GPU figures', async () => {
    const hardware = await describeHardware('cuda', 8 * 1024 ** 3)
    expect(hardware.os).toBe(process.platform)
    expect(hardware.arch).toBe(process.arch)
    expect(hardware.cpuModel.length).toBeGreaterThan(0)
    expect(hardware.cpuCores).toBeGreaterThanOrEqual(1)
    expect(hardware.cpuCores).toBeLessThanOrEqual(availableParallelism())
    expect(hardware.ramTotalBytes).toBe(totalmem())
    expect(hardware).toMatchObject({ gpu: 'cuda', vramTotalBytes: 8 * 1024 ** 3 })
    // Nothing live in what the certificate signs.
    expect(Object.keys(hardware).sort()).toEqual(
      ['arch', 'cpuCores', 'cpuModel', 'gpu', 'os', 'ramTotalBytes', 'vramTotalBytes'].sort(),
    )
  })

  it('defaults engine threads to the physical cores but one, leaving a core to the main thread', async () => {
    const cpu = await describeCpu()
    expect(cpu.physicalCores).toBeLessThanOrEqual(cpu.logicalCores)
    expect(await defaultThreads()).toBe(Math.max(1, cpu.physicalCores - 1))
    expect([1, 2, 4, 8, 16].map(engineThreadsFor)).toEqual([1, 1, 3, 7, 15])
    expect(engineThreadsFor(0)).toBe(1)
    expect(engineThreadsFor(Number.NaN)).toBe(1)
  })

  it('counts reclaimable cache as available on macOS, where free pages alone read far too low', async () => {
    const gib = 1024 ** 3
    const mac = { platform: 'darwin' as const, freemem: () => 0.4 * gib, mem: async () => ({ available: 9 * gib }) }
    expect(await availableMemoryBytes(mac)).toBe(9 * gib)
    // vm_stat failing or reading nothing: the free pages are still a lower bound.
    const failing = { ...mac, mem: async () => Promise.reject(new Error('vm_stat: not found')) }
    expect(await availableMemoryBytes(failing)).toBe(0.4 * gib)
    expect(await availableMemoryBytes({ ...mac, mem: async () => ({ available: 0 }) })).toBe(0.4 * gib)
    // Linux's and Windows' figure already is the available memory: systeminformation is not asked.
    const linux = { platform: 'linux' as const, freemem: () => 3 * gib, mem: () => Promise.reject(new Error('unused')) }
    expect(await availableMemoryBytes(linux)).toBe(3 * gib)
    expect(await availableMemoryBytes()).toBeGreaterThan(0)
  })

  it('reads the live parts on demand', () => {
    const live = liveHardware()
    expect(live.ramFreeBytes).toBeGreaterThan(0)
    expect(live.ramFreeBytes).toBeLessThanOrEqual(totalmem())
    expect(live.loadAverage).toBeGreaterThanOrEqual(0)
  })
})
