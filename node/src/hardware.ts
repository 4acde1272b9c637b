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

/**
 * Engine threads for a machine with `physicalCores`: one fewer than the cores, at least one (never
 * node-llama-cpp's own default, which counts logical cores).
 *
 * node-llama-cpp runs its generation loop (sampling, stop detection, detokenizing) on Node's main thread between
 * llama.cpp evaluations, and the node's networking and sealing run there too; llama.cpp's compute threads spin
 * while waiting for work. With as many compute threads as cores they starve the main thread. Measured with
 * `lull-node bench --threads N` on an idle 2-core machine: lull-tiny decodes 1,251 tokens/s with 1 thread and
 * 69 with 2; a 160 MB model 81 vs 60; only an 840 MB model (18 tokens/s), where compute dominates, did better
 * with every core (22 vs 18, +21 %). Leaving one core to the main thread avoids the collapse and costs a heavy
 * model at most one core's share; `--threads` still sets any count.
 */
export function engineThreadsFor(physicalCores: number): number {
  return Number.isInteger(physicalCores) && physicalCores > 1 ? physicalCores - 1 : 1
}

/** Engine threads unless `--threads` says otherwise: see {@link engineThreadsFor}. */
export async function defaultThreads(): Promise<number> {
  return engineThreadsFor((await describeCpu()).physicalCores)
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
