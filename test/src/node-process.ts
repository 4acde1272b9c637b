import { type ChildProcess, spawn } from 'node:child_process'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..', '..')
export const NODE_CLI = join(ROOT, 'node/dist/bin.cjs')

/** A `lull-node` CLI running as its own process (the built `node/dist/bin.cjs`). */
export interface NodeProcess {
  child: ChildProcess
  /** The node id from the line the CLI prints once it serves. */
  nodeId: string
  stdout(): string
  stderr(): string
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string>
  /** SIGKILLs the process if it is still running. */
  kill(): void
}

/** Spawns `lull-node start` with `args` and resolves once it prints that it serves (or rejects if it exits first). */
export async function startNodeProcess(args: string[], options: { timeoutMs?: number } = {}): Promise<NodeProcess> {
  const child = spawn(process.execPath, [NODE_CLI, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    stdout += text
  })
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr += text
  })
  const exited = new Promise<number | string>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit(code ?? signal ?? 'unknown'))
  })
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  const timeoutMs = options.timeoutMs ?? 90_000
  const nodeId = await new Promise<string>((resolveStart, rejectStart) => {
    const timer = setTimeout(() => {
      kill()
      rejectStart(new Error(`lull-node did not start within ${timeoutMs} ms; stderr: ${stderr.slice(-2_000)}`))
    }, timeoutMs)
    const onData = (): void => {
      const match = /^lull-node (\S+) /m.exec(stdout)
      if (match) {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        resolveStart(match[1] as string)
      }
    }
    child.stdout?.on('data', onData)
    void exited.then((code) => {
      clearTimeout(timer)
      rejectStart(new Error(`lull-node exited (${code}) before serving; stderr: ${stderr.slice(-2_000)}`))
    })
  })
  return { child, nodeId, stdout: () => stdout, stderr: () => stderr, exited, kill }
}
