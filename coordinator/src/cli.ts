#!/usr/bin/env node
import '@lull/proto/polyfill'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { Command } from 'commander'
import { DEFAULT_LISTEN_ADDRESS } from './constants.js'
import { Coordinator } from './coordinator.js'
import { createLogger } from './logger.js'

const program = new Command()
  .name('lull-coordinator')
  .description('Run and inspect a Lull coordinator: it schedules sealed requests onto nodes and never reads them.')

program
  .command('start')
  .description('start a coordinator and keep it running until Ctrl-C')
  .option('--listen <multiaddr...>', 'addresses to listen on', [DEFAULT_LISTEN_ADDRESS])
  .option(
    '--data-dir <dir>',
    'where the identity key lives (keeps the address stable)',
    join(homedir(), '.lull', 'coordinator'),
  )
  .option('--ready-file <path>', 'once listening, write the dialable multiaddr (with /p2p/<id>) to this file')
  .option('--open', 'open mode: any node may join, any client may submit (trusted local networks only)', false)
  .option('--log-level <level>', 'fatal, error, warn, info, debug or trace', process.env.LULL_LOG_LEVEL ?? 'info')
  .action(
    async (options: { listen: string[]; dataDir: string; readyFile?: string; open: boolean; logLevel: string }) => {
      const logger = createLogger(options.logLevel)
      let coordinator: Coordinator
      try {
        coordinator = await Coordinator.start({
          listen: options.listen,
          dataDir: options.dataDir,
          open: options.open,
          logger,
        })
      } catch (error) {
        process.stderr.write(`lull-coordinator: ${(error as Error).message}\n`)
        process.exit(1)
      }
      const address = coordinator.multiaddrs[0] ?? ''
      if (options.readyFile !== undefined) {
        await mkdir(dirname(options.readyFile), { recursive: true })
        const temporary = `${options.readyFile}.${process.pid}.tmp`
        await writeFile(temporary, `${address}\n`)
        await rename(temporary, options.readyFile)
      }
      process.stdout.write(`lull-coordinator listening on ${address}\n`)
      const shutdown = async (): Promise<void> => {
        await coordinator.stop()
        process.exit(0)
      }
      process.once('SIGINT', () => void shutdown())
      process.once('SIGTERM', () => void shutdown())
    },
  )

await program.parseAsync(process.argv)
