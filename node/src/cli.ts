#!/usr/bin/env node
import '@lull/proto/polyfill'
import { availableParallelism, homedir } from 'node:os'
import { join } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { DEFAULT_SLOTS } from './constants.js'
import { createLogger } from './logger.js'
import { LullNode } from './lull-node.js'

function positiveInteger(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('expected a whole number of at least 1')
  return parsed
}

/** Half the logical cores (about the physical ones), at least one: leaves the owner's machine responsive. */
const DEFAULT_THREADS = Math.max(1, Math.floor(availableParallelism() / 2))

const program = new Command()
  .name('lull-node')
  .description(
    'Serve a model to a Lull network from this machine. Prompts are opened only in memory, never logged or stored.',
  )

program
  .command('start')
  .description('load the model, register with the coordinator and serve until Ctrl-C')
  .requiredOption('--coordinator <multiaddr>', 'coordinator address (ends in /p2p/<id>)')
  .option('--model <model>', 'lull-tiny (built in, generated offline) or a path to a .gguf file', 'lull-tiny')
  .option(
    '--model-sha256 <hex>',
    'refuse the model unless its SHA-256 is this (also confirms a file you replaced on purpose)',
  )
  .option('--slots <n>', 'requests served at once (parallel sequences)', positiveInteger, DEFAULT_SLOTS)
  .option('--threads <n>', 'CPU threads for the engine', positiveInteger, DEFAULT_THREADS)
  .option('--data-dir <dir>', 'identity key and generated models', join(homedir(), '.lull', 'node'))
  .option('--log-level <level>', 'fatal, error, warn, info, debug or trace', process.env.LULL_LOG_LEVEL ?? 'info')
  .action(
    async (options: {
      coordinator: string
      model: string
      modelSha256?: string
      slots: number
      threads: number
      dataDir: string
      logLevel: string
    }) => {
      const logger = createLogger(options.logLevel)
      const controller = new AbortController()
      let node: LullNode | undefined
      const shutdown = async (): Promise<void> => {
        controller.abort()
        await node?.stop()
        process.exit(0)
      }
      process.once('SIGINT', () => void shutdown())
      process.once('SIGTERM', () => void shutdown())
      try {
        node = await LullNode.start({
          coordinator: options.coordinator,
          model: options.model,
          ...(options.modelSha256 === undefined ? {} : { modelSha256: options.modelSha256 }),
          slots: options.slots,
          threads: options.threads,
          dataDir: options.dataDir,
          logger,
          signal: controller.signal,
        })
      } catch (error) {
        if (controller.signal.aborted) return
        process.stderr.write(`lull-node: ${(error as Error).message}\n`)
        process.exit(1)
      }
      process.stdout.write(
        `lull-node ${node.nodeId} serving ${node.model.id} (${node.slots} slots, ${Math.round(node.benchmark.decodeTokensPerSecond)} tokens/s)\n`,
      )
    },
  )

await program.parseAsync(process.argv)
