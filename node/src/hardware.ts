import { execFile } from 'node:child_process'
import { availableParallelism, cpus, freemem, loadavg, totalmem } from 'node:os'
import { promisify } from 'node:util'
import type { HardwareSummary } from '@lull/proto'
import si from 'systeminformation'

const run = promisify(execFile)

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
  /** Memory a new allocation can count on (see {@link availableMemoryBytes}). */
  ramFreeBytes: number
  /** One-minute load average of the whole machine (0 on Windows). */
  loadAverage: number
}

export interface MemorySources {
  platform: NodeJS.Platform
  freemem: () => number
  /** macOS: memory available for new allocations (see {@link readVmStatAvailable}). */
  mem: () => Promise<{ available: number }>
}

/**
 * Memory available on macOS from `vm_stat`'s output: everything but the pages in use by processes (anonymous pages
 * that are not purgeable, wired pages and the compressor's), so free pages plus the file cache the kernel hands back
 * on demand; systeminformation's `mem()` reckons `available` the same way. The page size is in the first line.
 * Null when the output is not vm_stat's.
 */
export function parseVmStatAvailable(output: string, totalBytes: number): number | null {
  const pageSize = Number(/page size of (\d+) bytes/.exec(output)?.[1])
  if (!Number.isFinite(pageSize) || pageSize <= 0) return null
  const pages = (label: string): number | null => {
    const match = new RegExp(`^${label}:\\s+(\\d+)\\.?$`, 'm').exec(output)
    return match === null ? null : Number(match[1])
  }
  const anonymous = pages('Anonymous pages')
  const wired = pages('Pages wired down')
  if (anonymous === null || wired === null) return null
  const inUse =
    (anonymous - (pages('Pages purgeable') ?? 0) + wired + (pages('Pages occupied by compressor') ?? 0)) * pageSize
  const available = totalBytes - inUse
  return available > 0 && available <= totalBytes ? available : null
}

/**
 * Runs `vm_stat` (asynchronously, no shell). systeminformation's `mem()` on macOS also runs `sysctl` with
 * `execSync`, which would hold the node's event loop, and so its streaming answers, on every reading.
 */
async function readVmStatAvailable(): Promise<{ available: number }> {
  const { stdout } = await run('vm_stat', [], { timeout: 2_000 })
  const available = parseVmStatAvailable(stdout, totalmem())
  if (available === null) throw new Error('unexpected vm_stat output')
  return { available }
}

const SYSTEM_MEMORY_SOURCES: MemorySources = { platform: process.platform, freemem, mem: readVmStatAvailable }

/**
 * Memory a new allocation can count on. On Linux `os.freemem()` is the kernel's MemAvailable and on Windows the
 * available physical memory, both what is wanted. On macOS it is only the free page count, which leaves out the
 * file cache the kernel hands back on demand (a 16 GiB Mac often reads under 1 GiB "free"): there systeminformation's
 * `vm_stat`'s available memory (free plus reclaimable cache) is used, falling back to the free pages if it fails.
 */
export async function availableMemoryBytes(sources: MemorySources = SYSTEM_MEMORY_SOURCES): Promise<number> {
  if (sources.platform !== 'darwin') return sources.freemem()
  try {
    const { available } = await sources.mem()
    if (Number.isFinite(available) && available > 0) return available
  } catch {
    // vm_stat missing or failing: the free pages are a lower bound.
  }
  return sources.freemem()
}

/** The last macOS reading and when it was taken; reading it spawns `vm_stat`, so at most every few seconds. */
let macAvailable: { bytes: number; atMs: number } | undefined
let macRefresh: Promise<void> | undefined
const MAC_MEMORY_REFRESH_MS = 5_000

/** Takes a fresh reading of available memory for {@link liveHardware} (it only matters on macOS). */
export async function refreshLiveHardware(): Promise<void> {
  if (process.platform !== 'darwin') return
  macRefresh ??= availableMemoryBytes()
    .then((bytes) => {
      macAvailable = { bytes, atMs: Date.now() }
    })
    .finally(() => {
      macRefresh = undefined
    })
  await macRefresh
}

/** The parts of the hardware picture that change: read on every heartbeat, synchronously. */
export function liveHardware(): LiveHardware {
  let ramFreeBytes = freemem()
  if (process.platform === 'darwin') {
    if (macAvailable !== undefined) ramFreeBytes = macAvailable.bytes
    if (macAvailable === undefined || Date.now() - macAvailable.atMs > MAC_MEMORY_REFRESH_MS) {
      void refreshLiveHardware().catch(() => {})
    }
  }
  return { ramFreeBytes, loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100 }
}
