/**
 * `lull-node models list|pull|rm`: the models in a data dir. `pull` does everything `start` does to a model before
 * loading it (download or generate, verify the digest, validate the GGUF, trial-load it, pin it), so a node started
 * later finds it ready, and a machine can pull while online and serve offline.
 */
import type { Command } from 'commander'
import { defaultThreads } from '../hardware.js'
import {
  DEFAULT_DOWNLOAD_RETRIES,
  formatBytes,
  isHfUri,
  LULL_TINY_MODEL_ID,
  listModels,
  type ModelEntry,
  type PreparedModel,
  prepareModel,
} from '../model/index.js'
import { removeModel } from '../model/model-inventory.js'
import { nonNegativeInteger, positiveInteger } from './option-parsers.js'
import { ProgressDisplay } from './progress-display.js'

export interface PrepareWithProgressOptions {
  dataDir: string
  threads: number
  modelSha256?: string | undefined
  downloadRetries?: number | undefined
  progress: ProgressDisplay
  signal?: AbortSignal | undefined
}

/** prepareModel with a progress display: one step for the download (if any), one for the checks. */
export async function prepareWithProgress(spec: string, options: PrepareWithProgressOptions): Promise<PreparedModel> {
  const { progress } = options
  const label = spec.replace(/@sha256:.*$/, '')
  let downloading = false
  progress.step(
    isHfUri(label)
      ? `Resolving ${label}`
      : label === LULL_TINY_MODEL_ID
        ? `Preparing ${label}`
        : `Checking ${label} (digest, GGUF, trial load)`,
  )
  const model = await prepareModel(spec, options.dataDir, {
    threads: options.threads,
    expectedSha256: options.modelSha256,
    downloadRetries: options.downloadRetries,
    signal: options.signal,
    onDownloadProgress: (status) => {
      if (!downloading) {
        downloading = true
        progress.step(`Downloading ${label}`)
      }
      progress.download(`Downloading ${label}`, status)
      if (status.totalBytes !== undefined && status.downloadedBytes === status.totalBytes) {
        progress.step(`Checking ${label} (digest, GGUF, trial load)`)
      }
    },
  })
  const fetched =
    model.download === undefined
      ? ''
      : `, downloaded ${formatBytes(model.download.sizeBytes)}${model.download.resumedFromBytes > 0 ? ` (resumed at ${formatBytes(model.download.resumedFromBytes)})` : ''}`
  progress.succeed(
    `${model.id} ready: SHA-256 ${model.sha256}, ${formatBytes(model.sizeBytes)}, ${model.pin}${fetched}`,
  )
  return model
}

function fail(error: unknown): void {
  process.stderr.write(`lull-node: ${(error as Error).message}\n`)
  process.exitCode = 1
}

function formatTable(entries: ModelEntry[]): string {
  if (entries.length === 0)
    return "No models yet. 'lull-node models pull <model>' adds one (lull-tiny, a path or an hf: URI).\n"
  const rows = entries.map((entry) => [
    entry.source,
    entry.state === 'partial'
      ? `partial ${formatBytes(entry.sizeBytes)}${entry.totalBytes === undefined ? '' : ` of ${formatBytes(entry.totalBytes)}`}`
      : formatBytes(entry.sizeBytes),
    entry.sha256 === undefined ? '-' : entry.sha256.slice(0, 16),
    entry.state === 'partial' ? 'no' : entry.source === LULL_TINY_MODEL_ID ? 'built-in' : 'yes',
    entry.state === 'missing' ? `missing (pull again): ${entry.path}` : entry.path,
  ])
  const header = ['MODEL', 'SIZE', 'SHA-256', 'PINNED', 'PATH']
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd()
  return `${[line(header), ...rows.map(line)].join('\n')}\n`
}

/** Adds `models list|pull|rm` to the program. */
export function registerModelsCommand(program: Command, defaultDataDir: string): void {
  const models = program
    .command('models')
    .description('the models in the data dir: list them, pull one (download or generate, verify, pin), remove one')

  models
    .command('list')
    .description('show each model: source, size, SHA-256, whether pinned, and the file the node loads')
    .option('--data-dir <dir>', 'the node data dir', defaultDataDir)
    .option('--json', 'print the list as JSON')
    .action(async (options: { dataDir: string; json?: boolean }) => {
      try {
        const entries = await listModels(options.dataDir)
        process.stdout.write(options.json ? `${JSON.stringify(entries, null, 2)}\n` : formatTable(entries))
      } catch (error) {
        fail(error)
      }
    })

  models
    .command('pull')
    .description(
      'get a model ready without starting a node: lull-tiny, a .gguf path, or hf:<user>/<repo>/<file>.gguf | hf:<user>/<repo>:<quant> (HF_ENDPOINT picks a mirror, HF_TOKEN grants access); downloads resume where they stopped',
    )
    .argument('<model>', 'lull-tiny, a path to a .gguf file, or an hf: URI (any of them may end in @sha256:<hex>)')
    .option('--model-sha256 <hex>', 'refuse the model unless its SHA-256 is this (also confirms a changed file)')
    .option(
      '--threads <n>',
      'CPU threads for the trial load (default: physical cores minus one, at least 1)',
      positiveInteger,
    )
    .option(
      '--retries <n>',
      'times a download that stops part way is resumed before giving up',
      nonNegativeInteger,
      DEFAULT_DOWNLOAD_RETRIES,
    )
    .option('--data-dir <dir>', 'the node data dir', defaultDataDir)
    .option('--json', 'print the result as JSON')
    .action(
      async (
        spec: string,
        options: { modelSha256?: string; threads?: number; retries: number; dataDir: string; json?: boolean },
      ) => {
        const progress = new ProgressDisplay()
        const controller = new AbortController()
        const onSignal = (): void => controller.abort()
        process.once('SIGINT', onSignal)
        try {
          const model = await prepareWithProgress(spec, {
            dataDir: options.dataDir,
            threads: options.threads ?? (await defaultThreads()),
            modelSha256: options.modelSha256,
            downloadRetries: options.retries,
            progress,
            signal: controller.signal,
          })
          const result = {
            source: model.sourcePath,
            id: model.id,
            path: model.path,
            sizeBytes: model.sizeBytes,
            sha256: model.sha256,
            pin: model.pin,
            ...(model.download === undefined ? {} : { download: model.download }),
          }
          process.stdout.write(
            options.json
              ? `${JSON.stringify(result, null, 2)}\n`
              : `${model.sourcePath} ${model.sha256} ${formatBytes(model.sizeBytes)} (${model.pin})\n`,
          )
        } catch (error) {
          progress.stop()
          if (controller.signal.aborted) {
            process.stderr.write('lull-node: pull stopped; run it again to resume\n')
            process.exitCode = 130
          } else {
            fail(error)
          }
        } finally {
          process.off('SIGINT', onSignal)
        }
      },
    )

  models
    .command('rm')
    .description('remove a model: its pin, its stored copy and any partial download')
    .argument('<model>', "as 'models list' shows it: lull-tiny, a path, or an hf: URI")
    .option('--data-dir <dir>', 'the node data dir', defaultDataDir)
    .option('--force', 'remove it even if a running node serves it (that node keeps serving its copy until it stops)')
    .option('--json', 'print what was removed as JSON')
    .action(async (name: string, options: { dataDir: string; force?: boolean; json?: boolean }) => {
      try {
        const result = await removeModel(options.dataDir, name, { force: options.force === true })
        if (options.json) {
          process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
          return
        }
        const files = result.removedFiles.length === 0 ? 'no files' : result.removedFiles.join(', ')
        process.stdout.write(`removed ${result.source}${result.unpinned ? ' and its pin' : ''}: ${files}\n`)
        if (result.inUseByRunningNode) {
          process.stderr.write(
            'lull-node: the running node keeps serving its copy until it stops; it will not start with this model again until you pull it again\n',
          )
        }
      } catch (error) {
        fail(error)
      }
    })
}
