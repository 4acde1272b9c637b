import { availableParallelism, totalmem } from 'node:os'
import { describe, expect, it } from 'vitest'
import { defaultThreads, describeCpu, describeHardware, liveHardware } from './hardware.js'

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

  it('defaults engine threads to the physical cores', async () => {
    const cpu = await describeCpu()
    expect(cpu.physicalCores).toBeLessThanOrEqual(cpu.logicalCores)
    expect(await defaultThreads()).toBe(cpu.physicalCores)
  })

  it('reads the live parts on demand', () => {
    const live = liveHardware()
    expect(live.ramFreeBytes).toBeGreaterThan(0)
    expect(live.ramFreeBytes).toBeLessThanOrEqual(totalmem())
    expect(live.loadAverage).toBeGreaterThanOrEqual(0)
  })
})
