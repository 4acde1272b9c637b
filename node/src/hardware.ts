import { availableParallelism, cpus, freemem, loadavg, totalmem } from 'node:os'
import type { HardwareSummary } from '@lull/proto'
import si from 'systeminformation'

/** The CPU as systeminformation reports it, falling back to Node's view (logical cores) where it cannot. */
export async function describeCpu(): Promise<{ model: string; physicalCores: number; logicalCores: number }> {
  const logicalCores = availableParallelism()
  const fallbackModel = (cpus()[0]?.model ?? 'unknown').trim()
  try {
    const cpu = await si.cpu()
    // The OS's model string is the fuller one ("AMD EPYC 7B13 64-Core Processor" where systeminformation says
    // "EPYC"); systeminformation fills in where the OS gives none.
    const siModel = [cpu.manufacturer, cpu.brand].filter((part) => part.trim().length > 0).join(' ')
    const model = fallbackModel !== 'unknown' && fallbackModel.length > 0 ? fallbackModel : siModel
    const physicalCores =
      Number.isInteger(cpu.physicalCores) && cpu.physicalCores > 0 ? cpu.physicalCores : logicalCores
    return { model: model.length > 0 ? model : 'unknown', physicalCores, logicalCores }
  } catch {
    return { model: fallbackModel, physicalCores: logicalCores, logicalCores }
  }
}

/** Engine threads unless `--threads` says otherwise: one per physical core (never node-llama-cpp's default). */
export async function defaultThreads(): Promise<number> {
  return Math.max(1, (await describeCpu()).physicalCores)
}

/**
 * What this machine is, as the node advertises it in its certificate: static facts only (live values such as free
 * memory travel in heartbeats, see {@link liveHardware}). The GPU figures come from the engine that loaded the model.
 */
export async function describeHardware(gpu: HardwareSummary['gpu'], vramTotalBytes: number): Promise<HardwareSummary> {
  const cpu = await describeCpu()
  return {
    os: process.platform,
    arch: process.arch,
    cpuModel: cpu.model.slice(0, 256),
    cpuCores: Math.min(4096, cpu.physicalCores),
    ramTotalBytes: totalmem(),
    gpu,
    vramTotalBytes,
  }
}

export interface LiveHardware {
  ramFreeBytes: number
  /** One-minute load average of the whole machine (0 on Windows). */
  loadAverage: number
}

/** The parts of the hardware picture that change: read on every heartbeat. */
export function liveHardware(): LiveHardware {
  return { ramFreeBytes: freemem(), loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100 }
}
