/**
 * A Lull network of real processes on 127.0.0.1: the `lull-coordinator` and `lull-node` commands an operator runs,
 * started from the built packages, each with its log in the state directory. For chaos tests and benchmarks that
 * need to SIGKILL a process or restart the coordinator on the same address (fixed port, persistent identity).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { LullClient } from '@lull/client-sdk'

const ROOT = resolve(import.meta.dirname, '..', '..')
const START_TIMEOUT_MS = 120_000

export interface ProcessNetworkOptions {
  stateDir: string
  nodes: number
  slots: number
  /** @default 1 */
  threads?: number
  /** @default 'warn' */
  logLevel?: string
}

/** One process of the network, which can be killed and started again with the same arguments. */
export interface ManagedProcess {
  readonly name: string
  readonly pid: number | undefined
  readonly running: boolean
  /** Sends `signal` and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts the process again (same arguments, same data dir). */
  respawn(): void
  /** Resident set size in bytes, from /proc (Linux); undefined when not running or unknown. */
  rssBytes(): Promise<number | undefined>
  /** CPU time (user + system) used so far, in ms, from /proc (Linux); undefined when not running or unknown. */
  cpuMs(): Promise<number | undefined>
}

export interface ProcessNetwork {
  /** The coordinator's address; stable across coordinator restarts (fixed port, persistent identity). */
  address: string
  coordinator: ManagedProcess
  nodes: Array<ManagedProcess & { dataDir: string }>
  /** Waits until at least `count` nodes are in the coordinator's catalogue. */
  waitForNodes(count: number): Promise<void>
  stop(): Promise<void>
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`)
    await new Promise((done) => setTimeout(done, 100))
  }
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const address = server.address()
  await new Promise((done) => server.close(done))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

function managed(name: string, logPath: string, script: string, args: string[]): ManagedProcess {
  let child: ChildProcess | undefined
  const start = (): void => {
    child = spawn(process.execPath, [join(ROOT, script), ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.pipe(createWriteStream(logPath, { flags: 'a' }))
  }
  start()
  return {
    name,
    get pid() {
      return child?.pid
    },
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null
    },
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      const current = child
      if (current === undefined || current.exitCode !== null || current.signalCode !== null) return
      const exited = new Promise((done) => current.once('exit', done))
      current.kill(signal)
      await exited
    },
    respawn: start,
    async rssBytes() {
      if (child?.pid === undefined || !this.running) return undefined
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '')
      const kib = /VmRSS:\s+(\d+) kB/.exec(status)?.[1]
      return kib === undefined ? undefined : Number(kib) * 1024
    },
    async cpuMs() {
      if (child?.pid === undefined || !this.running) return undefined
      const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8').catch(() => '')
      // After the command name: utime and stime are the 12th and 13th fields, in clock ticks (100 a second).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (fields.length < 13) return undefined
      return (Number(fields[11]) + Number(fields[12])) * 10
    },
  }
}

export async function startProcessNetwork(options: ProcessNetworkOptions): Promise<ProcessNetwork> {
  const logs = join(options.stateDir, 'logs')
  await mkdir(logs, { recursive: true })
  const logLevel = options.logLevel ?? 'warn'
  const processes: ManagedProcess[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((process) => process.kill('SIGKILL')))
  }
  try {
    const port = await freePort()
    const readyFile = join(options.stateDir, 'coordinator.addr')
    await rm(readyFile, { force: true })
    const coordinator = managed('coordinator', join(logs, 'coordinator.log'), 'coordinator/dist/cli.js', [
      'start',
      '--open',
      '--listen',
      `/ip4/127.0.0.1/tcp/${port}`,
      '--data-dir',
      join(options.stateDir, 'coordinator'),
      '--ready-file',
      readyFile,
      '--log-level',
      logLevel,
    ])
    processes.push(coordinator)
    const address = await waitFor('the coordinator starting', async () => {
      const text = (await readFile(readyFile, 'utf8')).trim()
      return text === '' ? undefined : text
    })
    const nodes = Array.from({ length: options.nodes }, (_, index) => {
      const dataDir = join(options.stateDir, `node-${index}`)
      const node = managed(`node-${index}`, join(logs, `node-${index}.log`), 'node/dist/bin.cjs', [
        'start',
        '--coordinator',
        address,
        '--model',
        'lull-tiny',
        '--slots',
        String(options.slots),
        '--threads',
        String(options.threads ?? 1),
        '--when',
        'always',
        '--data-dir',
        dataDir,
        '--log-level',
        logLevel,
      ])
      processes.push(node)
      return Object.assign(node, { dataDir })
    })
    const waitForNodes = async (count: number): Promise<void> => {
      const client = await LullClient.connect({ coordinator: address, catalogueMaxAgeMs: 0 })
      try {
        await waitFor(`${count} node(s) registering`, async () => {
          const listed = (await client.models()).find((model) => model.id === 'lull-tiny')?.nodes ?? []
          return listed.length >= count ? true : undefined
        })
      } finally {
        await client.close()
      }
    }
    await waitForNodes(options.nodes)
    return { address, coordinator, nodes, waitForNodes, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
