import { availableParallelism, cpus, totalmem } from 'node:os'
import type { HardwareSummary } from '@lull/proto'

/** What this machine is, as the node advertises it. The GPU figures come from the engine that loaded the model. */
export function describeHardware(gpu: HardwareSummary['gpu'], vramTotalBytes: number): HardwareSummary {
  const cpu = cpus()[0]
  return {
    os: process.platform,
    arch: process.arch,
    cpuModel: (cpu?.model ?? 'unknown').trim().slice(0, 256),
    cpuCores: availableParallelism(),
    ramTotalBytes: totalmem(),
    gpu,
    vramTotalBytes,
  }
}
