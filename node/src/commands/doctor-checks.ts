/**
 * The checks behind `lull-node doctor`. Each looks at one thing the node needs (runtime, engine binary, GPU,
 * hardware, data dir, model, coordinator) for real, and reports ok, warn or fail with a line saying how to fix it.
 */
import { access, constants as fsConstants, stat } from 'node:fs/promises'
import { freemem, totalmem } from 'node:os'
import { dirname, resolve } from 'node:path'
import { createLullHost, NODE_PROTOCOL } from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import { getLlama, type Llama, LlamaLogLevel } from 'node-llama-cpp'
import { DOCTOR_DIAL_TIMEOUT_MS } from '../constants.js'
import { describeCpu } from '../hardware.js'
import { sha256Bytes } from '../model/file-digest.js'
import {
  buildLullTinyGguf,
  LULL_TINY_MODEL_ID,
  ModelRejectedError,
  type ModelRejectionReason,
  parseModelSpec,
  readPins,
  sha256File,
  validateGgufFile,
} from '../model/index.js'
import { checkModelFile } from '../model/resolve-model.js'

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

function formatGib(bytes: number): string {
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
  const summary = `${cpu.model}, ${cpu.physicalCores} physical cores (${cpu.logicalCores} logical), engine threads ${threads}; RAM ${formatGib(totalmem())} (${formatGib(freemem())} free)`
  if (threads > cpu.logicalCores) {
    return {
      name: 'hardware',
      status: 'warn',
      summary,
      fix: `--threads ${threads} is more than the ${cpu.logicalCores} logical cores: decoding slows down; leave --threads out (one per physical core)`,
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
  const summary = existing === absolute ? `${absolute} is writable` : `${absolute} will be created`
  return { name: 'data-dir', status: 'ok', summary }
}

const MODEL_FIXES: Partial<Record<ModelRejectionReason, string>> = {
  'not-found': `pass --model ${LULL_TINY_MODEL_ID} (built in) or the path of a local .gguf file`,
  'not-a-file': 'pass the path of the .gguf file itself',
  'digest-mismatch': 'check that this is the file you meant, or give its new digest with --model-sha256',
  'invalid-expected-digest': 'give the 64 hex characters that sha256sum prints',
  'invalid-pins-file': 'restore the pins file, or delete it so the next start pins the model files as they are',
}

function modelFailure(error: ModelRejectedError, fix?: string): CheckResult {
  return {
    name: 'model',
    status: 'fail',
    summary: error.message,
    fix: fix ?? MODEL_FIXES[error.reason] ?? 'download or convert the model file again (see the message above)',
  }
}

/** The model the node would serve: present, a valid GGUF, and with the digest pinned or expected for it. */
export async function checkModel(spec: string, dataDir: string, expectedSha256?: string): Promise<CheckResult> {
  try {
    const { model, expectedSha256: expected } = parseModelSpec(spec, expectedSha256)
    if (model === LULL_TINY_MODEL_ID) return await checkBuiltInModel(dataDir, expected)
    const path = resolve(model)
    await checkModelFile(path)
    const summary = await validateGgufFile(path)
    const sha256 = await sha256File(path)
    if (expected !== undefined && sha256 !== expected) {
      return modelFailure(
        new ModelRejectedError('digest-mismatch', `${path} has SHA-256 ${sha256}, but ${expected} was expected`),
      )
    }
    const pin = (await readPins(dataDir)).get(path)
    if (expected === undefined && pin !== undefined && pin.sha256 !== sha256) {
      return modelFailure(
        new ModelRejectedError(
          'changed-since-pinned',
          `${path} changed since it was pinned: SHA-256 ${pin.sha256} then (${pin.pinnedAt}), ${sha256} now`,
        ),
        `if you replaced it on purpose, start with --model-sha256 ${sha256} to pin the new file; otherwise restore the original`,
      )
    }
    const pinText =
      pin === undefined ? 'not pinned yet: the first start pins it' : `matches its pin from ${pin.pinnedAt}`
    return {
      name: 'model',
      status: 'ok',
      summary: `${path}: GGUF v${summary.version} ${summary.architecture}, ${formatGib(summary.fileSizeBytes)}, SHA-256 ${sha256.slice(0, 16)}…, ${pinText}`,
    }
  } catch (error) {
    if (error instanceof ModelRejectedError) return modelFailure(error)
    throw error
  }
}

async function checkBuiltInModel(dataDir: string, expected: string | undefined): Promise<CheckResult> {
  const bytes = buildLullTinyGguf()
  const built = sha256Bytes(bytes)
  if (expected !== undefined && expected !== built) {
    return modelFailure(
      new ModelRejectedError('digest-mismatch', `${LULL_TINY_MODEL_ID} builds to SHA-256 ${built}, not ${expected}`),
      `drop --model-sha256, or give ${built}`,
    )
  }
  const path = resolve(dataDir, 'models', `${LULL_TINY_MODEL_ID}.gguf`)
  let onDisk: string | undefined
  try {
    onDisk = await sha256File(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const size = `${(bytes.length / 1024 ** 2).toFixed(1)} MiB`
  if (onDisk === undefined) {
    return {
      name: 'model',
      status: 'ok',
      summary: `${LULL_TINY_MODEL_ID} (built in, ${size}): generated at first start`,
    }
  }
  if (onDisk !== built) {
    return {
      name: 'model',
      status: 'warn',
      summary: `${path} differs from a fresh ${LULL_TINY_MODEL_ID} build (SHA-256 ${onDisk.slice(0, 16)}…)`,
      fix: 'nothing to do: the next start writes it again',
    }
  }
  return {
    name: 'model',
    status: 'ok',
    summary: `${LULL_TINY_MODEL_ID} (built in, ${size}) at ${path}, SHA-256 ${built.slice(0, 16)}… as built`,
  }
}

/** Dials the coordinator with a throwaway identity and negotiates the node protocol, within a timeout. */
export async function checkCoordinator(address: string | undefined, timeoutMs = DOCTOR_DIAL_TIMEOUT_MS) {
  const name = 'coordinator'
  if (address === undefined) {
    return {
      name,
      status: 'warn',
      summary: 'not checked: no address given',
      fix: 'pass --coordinator <multiaddr> (as lull-coordinator start prints it) to test the connection',
    } satisfies CheckResult
  }
  let target: ReturnType<typeof multiaddr>
  try {
    target = multiaddr(address)
  } catch {
    return {
      name,
      status: 'fail',
      summary: `${address} is not a multiaddr`,
      fix: 'copy the address lull-coordinator start prints, e.g. /ip4/203.0.113.5/tcp/4710/p2p/12D3KooW…',
    } satisfies CheckResult
  }
  const expectedPeer = target.getComponents().findLast((component) => component.name === 'p2p')?.value
  if (expectedPeer === undefined) {
    return {
      name,
      status: 'fail',
      summary: `${address} has no /p2p/<peer id>: the coordinator cannot be authenticated`,
      fix: 'use the full address lull-coordinator start prints, ending in /p2p/<peer id>',
    } satisfies CheckResult
  }
  const hostPort = target
    .getComponents()
    .filter((component) => component.name !== 'p2p')
    .map((component) => component.value ?? component.name)
    .join(':')
  const host = await createLullHost({})
  const startedMs = performance.now()
  try {
    const stream = await host.dialProtocol(target, NODE_PROTOCOL, { signal: AbortSignal.timeout(timeoutMs) })
    const elapsedMs = performance.now() - startedMs
    await stream.close().catch(() => stream.abort(new Error('doctor done')))
    return {
      name,
      status: 'ok',
      summary: `${address} answered the node protocol (${NODE_PROTOCOL}) in ${elapsedMs.toFixed(0)} ms`,
    } satisfies CheckResult
  } catch (error) {
    return { name, status: 'fail', ...explainDialFailure(error as Error, hostPort, expectedPeer, timeoutMs) } as const
  } finally {
    await host.stop()
  }
}

function explainDialFailure(
  error: Error,
  hostPort: string,
  expectedPeer: string,
  timeoutMs: number,
): { summary: string; fix: string } {
  const text = `${error.name} ${error.message} ${String((error as { cause?: unknown }).cause ?? '')}`
  if (/ECONNREFUSED/.test(text)) {
    return {
      summary: `nothing listens at ${hostPort} (connection refused)`,
      fix: 'start the coordinator (lull-coordinator start), or check the host and port in the address',
    }
  }
  if (/abort|timeout/i.test(text)) {
    return {
      summary: `no answer from ${hostPort} within ${timeoutMs} ms`,
      fix: 'check that the host is up and reachable from here, and that a firewall lets TCP through to that port',
    }
  }
  if (/UnexpectedPeer|does not match expected remote identity/i.test(text)) {
    return {
      summary: `${hostPort} answered as a different peer than ${expectedPeer}`,
      fix: 'the coordinator got a new identity or the address is for another one: copy its current address again',
    }
  }
  if (/Unsupported|protocol selection|negotiat/i.test(text)) {
    return {
      summary: `${hostPort} does not speak ${NODE_PROTOCOL}`,
      fix: 'that peer is not a Lull coordinator, or runs an incompatible version: update both to the same release',
    }
  }
  return {
    summary: `could not reach ${hostPort}: ${error.name}: ${error.message}`,
    fix: 'check the address, that the coordinator runs, and that the network allows the connection',
  }
}
