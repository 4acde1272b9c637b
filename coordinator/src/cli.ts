#!/usr/bin/env node
import '@lull/proto/polyfill'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { listApiKeys } from './accounts/api-keys.js'
import { listJoinTokens } from './accounts/join-tokens.js'
import { DEFAULT_COORDINATOR_DATA_DIR } from './commands/command-helpers.js'
import { addKeysCommand } from './commands/keys.js'
import { addTokensCommand } from './commands/tokens.js'
import { addUsageCommands } from './commands/usage.js'
import { DEFAULT_LISTEN_ADDRESS } from './constants.js'
import type { Coordinator } from './coordinator.js'
import { createLogger } from './logger.js'
import { formatExplain, formatStatus } from './status-format.js'

function metricsPort(value: string): number {
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new InvalidArgumentError('expected a port number (0-65535)')
  return port
}

const program = new Command()
  .name('lull-coordinator')
  .description('Run and inspect a Lull coordinator: it schedules sealed requests onto nodes and never reads them.')

program
  .command('start')
  .description('start a coordinator and keep it running until Ctrl-C')
  .option('--listen <multiaddr...>', 'addresses to listen on', [DEFAULT_LISTEN_ADDRESS])
  .option(
    '--data-dir <dir>',
    'the identity key (keeps the address stable) and the accounts store: API keys, join tokens, balances, usage ledger',
    DEFAULT_COORDINATOR_DATA_DIR,
  )
  .option('--ready-file <path>', 'once listening, write the dialable multiaddr (with /p2p/<id>) to this file')
  .option(
    '--open',
    'open mode: no join tokens, API keys, limits or credits; any peer may read the admin view (status, explain); usage is still recorded. Trusted local networks only. Without it, nodes need a join token (tokens create) and clients an API key (keys create)',
    false,
  )
  .option(
    '--metrics-port <port>',
    'serve Prometheus metrics at http://127.0.0.1:<port>/metrics (0 picks a free port)',
    metricsPort,
  )
  .option('--log-level <level>', 'fatal, error, warn, info, debug or trace', process.env.LULL_LOG_LEVEL ?? 'info')
  .action(
    async (options: {
      listen: string[]
      dataDir: string
      readyFile?: string
      open: boolean
      logLevel: string
      metricsPort?: number
    }) => {
      const logger = createLogger(options.logLevel)
      let coordinator: Coordinator
      try {
        // Loaded here, not at the top: the accounts commands need no libp2p and start faster without it.
        const { Coordinator } = await import('./coordinator.js')
        coordinator = await Coordinator.start({
          listen: options.listen,
          dataDir: options.dataDir,
          open: options.open,
          logger,
          ...(options.metricsPort === undefined ? {} : { metricsPort: options.metricsPort }),
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
      if (coordinator.metrics !== undefined) process.stdout.write(`metrics at ${coordinator.metrics.url}\n`)
      const { store } = coordinator.accounts
      if (options.open) {
        process.stdout.write('open mode: no join tokens, API keys, limits or credits (trusted local networks only)\n')
      } else if (store !== undefined) {
        const keys = listApiKeys(store).filter((key) => key.revokedAtMs === undefined).length
        const tokens = listJoinTokens(store).filter((token) => token.revokedAtMs === undefined).length
        process.stdout.write(`accounts in ${options.dataDir}: ${keys} API key(s), ${tokens} join token(s)\n`)
        if (keys === 0 || tokens === 0) {
          process.stdout.write(
            `nodes need a join token and clients an API key: lull-coordinator tokens create --name <node> --data-dir ${options.dataDir}; lull-coordinator keys create --name <app> --credits <n> --data-dir ${options.dataDir}\n`,
          )
        }
      }
      const shutdown = async (): Promise<void> => {
        await coordinator.stop()
        process.exit(0)
      }
      process.once('SIGINT', () => void shutdown())
      process.once('SIGTERM', () => void shutdown())
    },
  )

program
  .command('status')
  .description(
    'show every node (hardware, model, state, load, requests, errors, last seen) and network totals; never any payload. Needs an admin API key unless the coordinator runs --open',
  )
  .requiredOption('--coordinator <multiaddr>', "the coordinator's address, ending in /p2p/<peer id>")
  .option('--api-key <key>', 'an API key with the admin role (keys create --admin). Default: $LULL_API_KEY')
  .option('--json', 'print the status as JSON (for scripts)', false)
  .option('--watch [seconds]', 'refresh every few seconds until Ctrl-C (default 2)')
  .action(async (options: { coordinator: string; json: boolean; watch?: string | boolean; apiKey?: string }) => {
    const apiKey = options.apiKey ?? (process.env.LULL_API_KEY || undefined)
    const { fetchStatus } = await import('./admin-client.js')
    const intervalMs =
      options.watch === undefined
        ? undefined
        : Math.max(0.5, Number(options.watch === true ? 2 : options.watch) || 2) * 1000
    for (;;) {
      try {
        const status = await fetchStatus(options.coordinator, undefined, apiKey)
        const text = options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status)
        process.stdout.write(intervalMs !== undefined && !options.json ? `\x1b[2J\x1b[H${text}` : text)
      } catch (error) {
        process.stderr.write(
          `lull-coordinator: cannot get the status from ${options.coordinator}: ${(error as Error).message}\n`,
        )
        if (intervalMs === undefined) process.exit(1)
      }
      if (intervalMs === undefined) return
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })

program
  .command('explain')
  .description(
    "show the scheduling decisions for a recent request (the client's or the node-side request id), with reasons",
  )
  .argument('<request-id>', "the request id (one that starts with '-' goes after --: explain -- -abc…)")
  .requiredOption('--coordinator <multiaddr>', "the coordinator's address, ending in /p2p/<peer id>")
  .option('--api-key <key>', 'an API key with the admin role (keys create --admin). Default: $LULL_API_KEY')
  .option('--json', 'print as JSON', false)
  .action(async (requestId: string, options: { coordinator: string; json: boolean; apiKey?: string }) => {
    try {
      const apiKey = options.apiKey ?? (process.env.LULL_API_KEY || undefined)
      const { fetchExplain } = await import('./admin-client.js')
      const explained = await fetchExplain(options.coordinator, requestId, undefined, apiKey)
      process.stdout.write(options.json ? `${JSON.stringify(explained, null, 2)}\n` : formatExplain(explained))
    } catch (error) {
      process.stderr.write(`lull-coordinator: ${(error as Error).message}\n`)
      process.exit(1)
    }
  })

addKeysCommand(program)
addTokensCommand(program)
addUsageCommands(program)

await program.parseAsync(process.argv)
