/**
 * The checks behind `lull-node doctor` for this machine (runtime, engine binary, GPU, hardware, data dir). Each looks
 * at one thing the node needs for real and reports ok, warn or fail with a line saying how to fix it. The model and
 * coordinator checks live in their own files.
 */
import { access, constants as fsConstants, readFile, stat } from 'node:fs/promises'
import { totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { IDENTITY_FILE } from '@lull/proto'
import { getLlama, type Llama, LlamaLogLevel } from 'node-llama-cpp'
import { availableMemoryBytes, describeCpu, engineThreadsFor } from '../hardware.js'

export type CheckStatus = 'ok' | 'warn' | 'fail'

export interface CheckResult {
  name: string
  status: CheckStatus
  /** What was found. */
  summary: string
  /** What to do about a warning or failure. */
  fix?: string
}

const MIN_NODE_MAJOR = 20
const GIB = 1024 ** 3

export function formatGib(bytes: number): string {
  return `${(bytes / GIB).toFixed(1)} GiB`
}

export function checkRuntime(): CheckResult {
  const major = Number(process.versions.node.split('.')[0])
  const summary = `Node ${process.version} on ${process.platform} ${process.arch}`
  if (major < MIN_NODE_MAJOR) {
    return {
      name: 'runtime',
      status: 'fail',
      summary: `${summary}: Node ${MIN_NODE_MAJOR} or newer is needed`,
      fix: `install Node ${MIN_NODE_MAJOR} LTS or newer (https://nodejs.org, or nvm install ${MIN_NODE_MAJOR}) and reinstall lull-node`,
    }
  }
  if (typeof Promise.withResolvers !== 'function') {
    return {
      name: 'runtime',
      status: 'fail',
      summary: `${summary}: Promise.withResolvers is missing (libp2p needs it)`,
      fix: 'reinstall lull-node: its entry point loads @lull/proto/polyfill first',
    }
  }
  return { name: 'runtime', status: 'ok', summary }
}

/** Loads node-llama-cpp's native binary the way the engine does (prebuilt only, threads set). */
export async function loadEngineBinary(threads: number): Promise<{ result: CheckResult; llama?: Llama }> {
  const warnings: string[] = []
  try {
    const llama = await getLlama({
      gpu: 'auto',
      build: 'never',
      maxThreads: threads,
      logLevel: LlamaLogLevel.warn,
      logger: (_level, message) => warnings.push(message.trim()),
    })
    const backend = llama.gpu === false ? 'CPU' : llama.gpu
    return {
      llama,
      result: {
        name: 'engine',
        status: 'ok',
        summary: `node-llama-cpp binary loaded (${backend}, ${threads} threads)`,
      },
    }
  } catch (error) {
    return {
      result: {
        name: 'engine',
        status: 'fail',
        summary: `node-llama-cpp could not load its binary for ${process.platform}-${process.arch}: ${(error as Error).message}${warnings.length > 0 ? ` (${warnings.at(-1)})` : ''}`,
        fix: 'reinstall lull-node so npm installs the prebuilt binary for this platform (npm install -g @lull/node); `npx node-llama-cpp inspect gpu` shows what it finds',
      },
    }
  }
}

export async function checkGpu(llama: Llama | undefined): Promise<CheckResult> {
  if (llama === undefined) {
    return {
      name: 'gpu',
      status: 'fail',
      summary: 'not checked: the engine binary did not load',
      fix: 'fix the engine check first',
    }
  }
  if (llama.gpu === false) {
    const fix =
      process.platform === 'darwin'
        ? 'Metal needs a Mac with Apple silicon or a supported GPU; the node serves on the CPU meanwhile'
        : 'for an NVIDIA GPU install its driver and CUDA (nvidia-smi must work); for others install Vulkan drivers; the node serves on the CPU meanwhile'
    return { name: 'gpu', status: 'warn', summary: 'no GPU backend: the model runs on the CPU (slower)', fix }
  }
  const [names, vram] = await Promise.all([llama.getGpuDeviceNames(), llama.getVramState()])
  const devices = names.length > 0 ? names.join(', ') : 'unnamed device'
  return {
    name: 'gpu',
    status: 'ok',
    summary: `${llama.gpu}: ${devices}, ${formatGib(vram.total)} VRAM (${formatGib(vram.free)} free)`,
  }
}

export async function checkHardware(threads: number): Promise<CheckResult> {
  const cpu = await describeCpu()
  // lull-node's entry sizes libuv's pool (thread-pool.cts) unless the environment did; libuv's own default is 4.
  const pool = process.env.UV_THREADPOOL_SIZE ?? '4'
  const summary = `${cpu.model}, ${cpu.physicalCores} physical cores (${cpu.logicalCores} logical), engine threads ${threads}, thread pool ${pool}; RAM ${formatGib(totalmem())} (${formatGib(await availableMemoryBytes())} available)`
  const fallback = engineThreadsFor(cpu.physicalCores)
  if (threads > cpu.logicalCores) {
    return {
      name: 'hardware',
      status: 'warn',
      summary,
      fix: `--threads ${threads} is more than the ${cpu.logicalCores} logical cores: decoding slows down; leave --threads out (${fallback} here)`,
    }
  }
  if (cpu.physicalCores > 1 && threads >= cpu.physicalCores) {
    return {
      name: 'hardware',
      status: 'warn',
      summary,
      fix: `--threads ${threads} leaves no core to the node's own loop (sampling, networking): light models can decode many times slower; leave --threads out (${fallback} here), or check with lull-node bench --threads N`,
    }
  }
  return { name: 'hardware', status: 'ok', summary }
}

/** The nearest existing directory at or above `path`. */
async function nearestExisting(path: string): Promise<string> {
  let current = resolve(path)
  for (;;) {
    try {
      await stat(current)
      return current
    } catch {
      const parent = dirname(current)
      if (parent === current) return current
      current = parent
    }
  }
}

export async function checkDataDir(dataDir: string): Promise<CheckResult> {
  const absolute = resolve(dataDir)
  const existing = await nearestExisting(absolute)
  try {
    if (!(await stat(existing)).isDirectory()) throw new Error(`${existing} is not a directory`)
    await access(existing, fsConstants.W_OK)
  } catch (error) {
    return {
      name: 'data-dir',
      status: 'fail',
      summary: `${absolute} cannot be written (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      fix: `pass --data-dir with a directory you own, or fix the permissions of ${existing}`,
    }
  }
  if (existing !== absolute) {
    return { name: 'data-dir', status: 'ok', summary: `${absolute} will be created (with a new node identity)` }
  }
  const identityPath = join(absolute, IDENTITY_FILE)
  let bytes: Buffer
  try {
    bytes = await readFile(identityPath)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    return { name: 'data-dir', status: 'ok', summary: `${absolute} is writable; the first start creates the identity` }
  }
  try {
    const nodeId = peerIdFromPrivateKey(privateKeyFromProtobuf(bytes)).toString()
    return { name: 'data-dir', status: 'ok', summary: `${absolute} is writable; node id ${nodeId}` }
  } catch {
    return {
      name: 'data-dir',
      status: 'fail',
      summary: `the identity key ${identityPath} cannot be read`,
      fix: `restore it from a backup, or move it away so the next start creates a new identity (a new node id)`,
    }
  }
}
