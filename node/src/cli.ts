#!/usr/bin/env node
import '@lull/proto/polyfill'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { registerBenchCommand } from './commands/bench.js'
import { doctorCommand } from './commands/doctor.js'
import { registerModelsCommand } from './commands/models.js'
import { downloadProgressReporter } from './commands/progress-display.js'
import { serviceCommand } from './commands/service.js'
import { DEFAULT_SLOTS } from './constants.js'
import { defaultThreads } from './hardware.js'
import { DEFAULT_GRACE_MS, type IdleMode, parseIdleMode } from './idle-policy.js'
import { createLogger } from './logger.js'
import { LullNode } from './lull-node.js'
import { formatStatus, readStatusFile } from './node-status.js'

function positiveInteger(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('expected a whole number of at least 1')
  return parsed
}

function nonNegativeInteger(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError('expected a whole number of at least 0')
  return parsed
}

function idleMode(value: string): IdleMode | string {
  try {
    return parseIdleMode(value)
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message)
  }
}

const DEFAULT_DATA_DIR = join(homedir(), '.lull', 'node')

const program = new Command()
  .name('lull-node')
  .description(
    'Serve a model to a Lull network from this machine. Prompts are opened only in memory, never logged or stored.',
  )

program
  .command('start')
  .description('load the model, register with the coordinator and serve until Ctrl-C')
  .requiredOption('--coordinator <multiaddr>', 'coordinator address (ends in /p2p/<id>)')
  .option(
    '--model <model>',
    'lull-tiny (built in, generated offline), a path to a .gguf file, or an hf: URI (downloaded, resumable)',
    'lull-tiny',
  )
  .option(
    '--model-sha256 <hex>',
    'refuse the model unless its SHA-256 is this (also confirms a file you replaced on purpose)',
  )
  .option('--slots <n>', 'requests served at once (parallel sequences)', positiveInteger, DEFAULT_SLOTS)
  .option(
    '--threads <n>',
    'CPU threads for the engine (default: physical cores minus one, at least 1)',
    positiveInteger,
  )
  .option(
    '--when <when>',
    'when to serve: idle (no keyboard or mouse input for 2 minutes, on AC power, cool, CPU otherwise quiet), always, or a local-time window HH:MM-HH:MM',
    idleMode,
    'idle',
  )
  .option(
    '--grace-ms <ms>',
    'when the owner returns or on Ctrl-C/SIGTERM, how long requests already running may finish before they are handed back',
    nonNegativeInteger,
    DEFAULT_GRACE_MS,
  )
  .option('--data-dir <dir>', 'identity key, generated models and status file', DEFAULT_DATA_DIR)
  .option(
    '--join-token <token>',
    'the join token from the network operator (lull-coordinator tokens create); not needed on an --open coordinator. Default: $LULL_JOIN_TOKEN',
  )
  .option('--log-level <level>', 'fatal, error, warn, info, debug or trace', process.env.LULL_LOG_LEVEL ?? 'info')
  .action(
    async (options: {
      joinToken?: string
      coordinator: string
      model: string
      modelSha256?: string
      slots: number
      threads?: number
      when: IdleMode | string
      graceMs: number
      dataDir: string
      logLevel: string
    }) => {
      const logger = createLogger(options.logLevel)
      const joinToken = options.joinToken ?? process.env.LULL_JOIN_TOKEN
      const controller = new AbortController()
      let node: LullNode | undefined
      let stopping = false
      // The first signal drains (running requests finish within --grace-ms, the rest are handed back); a second
      // one exits at once.
      const onSignal = (signal: NodeJS.Signals): void => {
        if (stopping) {
          process.stderr.write(`lull-node: ${signal} again, exiting now\n`)
          process.exit(1)
        }
        stopping = true
        controller.abort()
        if (node === undefined) process.exit(0)
        process.stderr.write(
          `lull-node: ${signal}: draining (${node.busySlots} running, up to ${options.graceMs} ms); send it again to exit now\n`,
        )
        node.drain({ graceMs: options.graceMs }).then(
          ({ finished, handedBack }) => {
            process.stderr.write(`lull-node: stopped (${finished} finished, ${handedBack} handed back)\n`)
            process.exit(0)
          },
          (error: unknown) => {
            process.stderr.write(`lull-node: stopping failed: ${(error as Error).message}\n`)
            process.exit(1)
          },
        )
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      try {
        node = await LullNode.start({
          coordinator: options.coordinator,
          model: options.model,
          ...(options.modelSha256 === undefined ? {} : { modelSha256: options.modelSha256 }),
          slots: options.slots,
          threads: options.threads ?? (await defaultThreads()),
          when: options.when,
          graceMs: options.graceMs,
          dataDir: options.dataDir,
          ...(joinToken === undefined || joinToken === '' ? {} : { joinToken }),
          logger,
          signal: controller.signal,
          onDownloadProgress: downloadProgressReporter(options.model.replace(/@sha256:.*$/, '')),
        })
      } catch (error) {
        if (controller.signal.aborted) return
        process.stderr.write(`lull-node: ${(error as Error).message}\n`)
        process.exit(1)
      }
      process.stdout.write(
        `lull-node ${node.nodeId} ${node.state === 'serving' ? 'serving' : `${node.idleStatus.state}${node.idleStatus.reason === undefined ? '' : ` (${node.idleStatus.reason})`}, will serve`} ${node.model.id} (${node.slots} slots, ${Math.round(node.benchmark.decodeTokensPerSecond)} tokens/s)\n`,
      )
    },
  )

program
  .command('status')
  .description('show the local node: state and why, idle signals, model, slots, requests served (never any payload)')
  .option('--data-dir <dir>', 'the data dir of the node to show', DEFAULT_DATA_DIR)
  .option('--json', 'print the status as JSON')
  .action(async (options: { dataDir: string; json?: boolean }) => {
    const lookup = await readStatusFile(options.dataDir)
    if (lookup.kind === 'missing') {
      if (options.json) process.stdout.write(`${JSON.stringify({ running: false, path: lookup.path })}\n`)
      else process.stderr.write(`lull-node: no node has run with data dir ${options.dataDir} (no ${lookup.path})\n`)
      process.exitCode = 3
      return
    }
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ running: lookup.running, ...lookup.report }, null, 2)}\n`)
    } else {
      process.stdout.write(formatStatus(lookup.report, lookup.running))
    }
    if (!lookup.running) process.exitCode = 3
  })

program.addCommand(doctorCommand())
program.addCommand(serviceCommand())
registerModelsCommand(program, DEFAULT_DATA_DIR)
registerBenchCommand(program, DEFAULT_DATA_DIR)

await program.parseAsync(process.argv)
