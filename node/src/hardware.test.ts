import { availableParallelism, totalmem } from 'node:os'
import { describe, expect, it } from 'vitest'
import {
  availableMemoryBytes,
  defaultThreads,
  describeCpu,
  describeHardware,
  engineThreadsFor,
  liveHardware,
  parseVmStatAvailable,
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
    // Linux's and Windows' figure already is the available memory: vm_stat is not asked.
    const linux = { platform: 'linux' as const, freemem: () => 3 * gib, mem: () => Promise.reject(new Error('unused')) }
    expect(await availableMemoryBytes(linux)).toBe(3 * gib)
    expect(await availableMemoryBytes()).toBeGreaterThan(0)
  })

  it("reads macOS's available memory from vm_stat: everything but anonymous, wired and compressed pages", () => {
    // vm_stat on a 16 GiB Apple-silicon Mac (16 KiB pages), abridged.
    const output = [
      'Mach Virtual Memory Statistics: (page size of 16384 bytes)',
      'Pages free:                                7000.',
      'Pages active:                            300000.',
      'Pages inactive:                          290000.',
      'Pages speculative:                         5000.',
      'Pages throttled:                              0.',
      'Pages wired down:                        150000.',
      'Pages purgeable:                          10000.',
      '"Translation faults":                 987654321.',
      'File-backed pages:                       280000.',
      'Anonymous pages:                         315000.',
      'Pages stored in compressor:              400000.',
      'Pages occupied by compressor:             60000.',
    ].join('\n')
    const total = 16 * 1024 ** 3
    const inUse = (315_000 - 10_000 + 150_000 + 60_000) * 16_384
    expect(parseVmStatAvailable(output, total)).toBe(total - inUse)
    expect(parseVmStatAvailable('command not found', total)).toBeNull()
    expect(parseVmStatAvailable(output.replace(/Anonymous pages.*\n/, ''), total)).toBeNull()
    // Counts that cannot be right for this machine are not believed.
    expect(parseVmStatAvailable(output, 1024 ** 3)).toBeNull()
  })

  it('reads the live parts on demand', () => {
    const live = liveHardware()
    expect(live.ramFreeBytes).toBeGreaterThan(0)
    expect(live.ramFreeBytes).toBeLessThanOrEqual(totalmem())
    expect(live.loadAverage).toBeGreaterThanOrEqual(0)
  })
})
