/**
 * `lull-node doctor`: checks what the node needs (runtime, engine binary, GPU, hardware, data dir, model,
 * coordinator reachability) and says how to fix each failure. Exits 1 when a check fails.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import { DOCTOR_DIAL_TIMEOUT_MS } from '../constants.js'
import { defaultThreads } from '../hardware.js'
import {
  type CheckResult,
  checkDataDir,
  checkGpu,
  checkHardware,
  checkRuntime,
  loadEngineBinary,
} from './doctor-checks.js'
import { checkCoordinator } from './doctor-coordinator-check.js'
import { checkModel } from './doctor-model-check.js'
import { positiveInteger } from './option-parsers.js'

export interface DoctorOptions {
  coordinator?: string
  model: string
  modelSha256?: string
  dataDir: string
  threads?: number
  /** How long the coordinator gets to answer. @default DOCTOR_DIAL_TIMEOUT_MS */
  timeoutMs?: number
  json?: boolean
}

/** Runs every check in order; a check that throws is reported as failed, never crashes the command. */
export async function runDoctor(options: DoctorOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = []
  const guard = async (name: string, check: () => Promise<CheckResult> | CheckResult): Promise<void> => {
    try {
      results.push(await check())
    } catch (error) {
      results.push({
        name,
        status: 'fail',
        summary: `the check itself failed: ${(error as Error).message}`,
        fix: 'run again; if it keeps failing, report it with this output',
      })
    }
  }
  const threads = options.threads ?? (await defaultThreads())
  await guard('runtime', checkRuntime)
  const engine = await loadEngineBinary(threads)
  results.push(engine.result)
  try {
    await guard('gpu', () => checkGpu(engine.llama))
  } finally {
    await engine.llama?.dispose()
  }
  await guard('hardware', () => checkHardware(threads))
  await guard('data-dir', () => checkDataDir(options.dataDir))
  await guard('model', () => checkModel(options.model, options.dataDir, options.modelSha256))
  await guard('coordinator', () => checkCoordinator(options.coordinator, options.timeoutMs))
  return results
}

const MARK: Record<CheckResult['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' }

export function formatDoctor(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((result) => result.name.length))
  const lines = results.flatMap((result) => [
    `${MARK[result.status]}  ${result.name.padEnd(width)}  ${result.summary}`,
    ...(result.fix === undefined ? [] : [`${' '.repeat(width + 8)}fix: ${result.fix}`]),
  ])
  const count = (status: CheckResult['status']) => results.filter((result) => result.status === status).length
  lines.push('', `${count('ok')} ok, ${count('warn')} warning(s), ${count('fail')} failure(s)`)
  return `${lines.join('\n')}\n`
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'check the runtime, engine binary, GPU, hardware, data dir, model and coordinator, and say how to fix each failure',
    )
    .option('--coordinator <multiaddr>', 'also dial this coordinator and negotiate the node protocol')
    .option('--model <model>', 'lull-tiny or a path to a .gguf file', 'lull-tiny')
    .option('--model-sha256 <hex>', 'the SHA-256 the model must have')
    .option('--data-dir <dir>', 'the node’s data dir (pins, generated models)', join(homedir(), '.lull', 'node'))
    .option(
      '--threads <n>',
      'engine threads to check with (default: physical cores minus one, at least 1)',
      positiveInteger,
    )
    .option(
      '--timeout-ms <ms>',
      'how long the coordinator gets to answer the dial and handshake',
      positiveInteger,
      DOCTOR_DIAL_TIMEOUT_MS,
    )
    .option('--json', 'print the results as JSON')
    .action(async (options: DoctorOptions) => {
      const results = await runDoctor(options)
      const failed = results.some((result) => result.status === 'fail')
      if (options.json) process.stdout.write(`${JSON.stringify({ ok: !failed, checks: results }, null, 2)}\n`)
      else process.stdout.write(formatDoctor(results))
      if (failed) process.exitCode = 1
    })
}
