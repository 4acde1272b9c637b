import { availableParallelism, totalmem } from 'node:os'
import { describe, expect, it } from 'vitest'
import { defaultThreads, describeCpu, describeHardware, engineThreadsFor, liveHardware } from './hardware.js'

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

  it('reads the live parts on demand', () => {
    const live = liveHardware()
    expect(live.ramFreeBytes).toBeGreaterThan(0)
    expect(live.ramFreeBytes).toBeLessThanOrEqual(totalmem())
    expect(live.loadAverage).toBeGreaterThanOrEqual(0)
  })
})
