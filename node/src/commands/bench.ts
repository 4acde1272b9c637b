/**
 * `lull-node bench`: measures the prefill and decode speed of a model on this machine, the same measurement a node
 * makes on start and advertises to the coordinator, without joining a network. The model is resolved, verified and
 * pinned as `start` does, checked against free memory, loaded, and measured over a few rounds; the median is shown.
 */
import type { Command } from 'commander'
import { DEFAULT_SLOTS } from '../constants.js'
import { DEFAULT_CONTEXT_SIZE_TOKENS, Engine } from '../engine/index.js'
import type { BenchmarkResult } from '../engine/types.js'
import { defaultThreads } from '../hardware.js'
import { checkModelFitsInMemory, formatBytes } from '../model/index.js'
import { prepareWithProgress } from './models.js'
import { positiveInteger } from './option-parsers.js'
import { ProgressDisplay } from './progress-display.js'

/** Rounds measured when `--rounds` is left out; the median is reported. */
export const DEFAULT_BENCH_ROUNDS = 3

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const rate = (tokensPerSecond: number): string => Math.round(tokensPerSecond).toLocaleString('en-US')

interface BenchOptions {
  model: string
  modelSha256?: string
  slots: number
  threads?: number
  rounds: number
  dataDir: string
  json?: boolean
}

async function bench(options: BenchOptions, progress: ProgressDisplay, signal: AbortSignal): Promise<void> {
  const threads = options.threads ?? (await defaultThreads())
  const model = await prepareWithProgress(options.model, {
    dataDir: options.dataDir,
    threads,
    modelSha256: options.modelSha256,
    progress,
    signal,
  })
  progress.step('Checking free memory')
  const memory = await checkModelFitsInMemory(model.path, {
    slots: options.slots,
    contextSize: DEFAULT_CONTEXT_SIZE_TOKENS,
    signal,
  })
  progress.succeed(
    memory.method === 'upper-bound'
      ? `Memory: fits (at most ${formatBytes(memory.requiredBytes)} needed, ${formatBytes(memory.availableBytes)} free)`
      : `Memory: needs about ${formatBytes(memory.requiredBytes)}, ${formatBytes(memory.availableBytes)} free`,
  )
  progress.step(`Loading ${model.id} (${options.slots} slots, ${threads} thread${threads === 1 ? '' : 's'})`)
  const engine = await Engine.load({ modelPath: model.path, slots: options.slots, threads }, { signal })
  try {
    progress.succeed(`Loaded ${model.id} on ${engine.gpu === 'none' ? 'the CPU' : engine.gpu}`)
    const runs: BenchmarkResult[] = []
    for (let round = 1; round <= options.rounds; round++) {
      const sofar =
        runs.length === 0
          ? ''
          : ` (so far: prefill ${rate(median(runs.map((run) => run.prefillTokensPerSecond)))}, decode ${rate(median(runs.map((run) => run.decodeTokensPerSecond)))} tokens/s)`
      progress.step(`Measuring prefill and decode: round ${round} of ${options.rounds}${sofar}`)
      runs.push(await engine.benchmark({ signal }))
    }
    const result = {
      prefillTokensPerSecond: median(runs.map((run) => run.prefillTokensPerSecond)),
      decodeTokensPerSecond: median(runs.map((run) => run.decodeTokensPerSecond)),
    }
    progress.succeed(`Measured ${options.rounds} round${options.rounds === 1 ? '' : 's'}`)
    if (options.json) {
      const report = {
        model: { id: model.id, source: model.sourcePath, sha256: model.sha256, sizeBytes: model.sizeBytes },
        slots: options.slots,
        threads,
        gpu: engine.gpu,
        contextSize: engine.contextSize,
        rounds: options.rounds,
        ...result,
        runs,
        memory,
      }
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
    } else {
      process.stdout.write(
        `${model.id} (${model.sha256.slice(0, 12)}, ${formatBytes(model.sizeBytes)}), ${options.slots} slots, ${threads} thread${threads === 1 ? '' : 's'}, ${engine.gpu === 'none' ? 'cpu' : engine.gpu}, median of ${options.rounds}\n` +
          `prefill  ${rate(result.prefillTokensPerSecond)} tokens/s\n` +
          `decode   ${rate(result.decodeTokensPerSecond)} tokens/s\n`,
      )
    }
  } finally {
    await engine.dispose()
  }
}

/** Adds `bench` to the program. */
export function registerBenchCommand(program: Command, defaultDataDir: string): void {
  program
    .command('bench')
    .description(
      'measure prefill and decode tokens/s of a model on this machine (what a node advertises), without joining a network',
    )
    .option('--model <model>', 'lull-tiny, a path to a .gguf file, or an hf: URI', 'lull-tiny')
    .option('--model-sha256 <hex>', 'refuse the model unless its SHA-256 is this')
    .option('--slots <n>', 'parallel sequences to load, as start would', positiveInteger, DEFAULT_SLOTS)
    .option(
      '--threads <n>',
      'CPU threads for the engine (default: physical cores minus one, at least 1)',
      positiveInteger,
    )
    .option('--rounds <n>', 'measurements to take; the median is reported', positiveInteger, DEFAULT_BENCH_ROUNDS)
    .option('--data-dir <dir>', 'the node data dir (generated and pinned models)', defaultDataDir)
    .option('--json', 'print the result as JSON (progress stays on stderr)')
    .action(async (options: BenchOptions) => {
      const progress = new ProgressDisplay()
      const controller = new AbortController()
      const onSignal = (): void => controller.abort()
      process.once('SIGINT', onSignal)
      try {
        await bench(options, progress, controller.signal)
      } catch (error) {
        progress.stop()
        process.stderr.write(
          controller.signal.aborted ? 'lull-node: bench stopped\n' : `lull-node: ${(error as Error).message}\n`,
        )
        process.exitCode = controller.signal.aborted ? 130 : 1
      } finally {
        process.off('SIGINT', onSignal)
      }
    })
}
