/**
 * `lull-node service install|uninstall`: runs `lull-node start` as a launchd agent (macOS) or a systemd user unit
 * (Linux). Files go under the user's home directory (`HOME`); the service manager is only touched with `--enable`
 * or `--disable`, otherwise the command to run is printed.
 */
import { execFile } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { homedir, userInfo } from 'node:os'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { Command, InvalidArgumentError, Option } from 'commander'
import { DEFAULT_GRACE_MS, parseIdleMode } from '../idle-policy.js'
import { isHfUri, LULL_TINY_MODEL_ID } from '../model/index.js'
import {
  disableCommand,
  enableCommand,
  renderLaunchdPlist,
  renderSystemdUnit,
  type ServiceDefinition,
  type ServicePlatform,
  servicePaths,
} from '../service/service-files.js'
import { nonNegativeInteger, positiveInteger } from './option-parsers.js'

const run = promisify(execFile)

/** The CLI's entry this module ships with (`dist/bin.cjs`: it sizes the thread pool, then loads `cli.js`). */
const CLI_PATH = fileURLToPath(new URL('../bin.cjs', import.meta.url))

export interface ServiceInstallOptions {
  coordinator: string
  model?: string
  modelSha256?: string
  slots?: number
  threads?: number
  when?: string
  graceMs?: number
  dataDir?: string
  logLevel?: string
  env?: string[]
  platform?: ServicePlatform
  dryRun?: boolean
  enable?: boolean
}

function thisPlatform(): ServicePlatform {
  if (process.platform === 'darwin') return 'macos'
  if (process.platform === 'linux') return 'linux'
  throw new Error(
    `services are set up on macOS (launchd) and Linux (systemd) only, not ${process.platform}: run 'lull-node start' under your own supervisor, or pass --platform to write the file anyway`,
  )
}

function coordinatorAddress(value: string): string {
  let address: ReturnType<typeof multiaddr>
  try {
    address = multiaddr(value)
  } catch {
    throw new InvalidArgumentError('not a multiaddr; copy the address the coordinator prints at start')
  }
  if (address.getComponents().at(-1)?.name !== 'p2p') {
    throw new InvalidArgumentError('the address must end in /p2p/<coordinator peer id>, as the coordinator prints it')
  }
  return value
}

function whenText(value: string): string {
  try {
    parseIdleMode(value)
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message)
  }
  return value.trim()
}

function environmentEntry(value: string, previous: string[] = []): string[] {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(value)) throw new InvalidArgumentError('expected NAME=VALUE')
  return [...previous, value]
}

/** The model spec with a local path made absolute (the service does not run in this directory). */
function absoluteModel(spec: string): string {
  const match = /@sha256:[^@]*$/.exec(spec)
  const model = match ? spec.slice(0, match.index) : spec
  if (model === LULL_TINY_MODEL_ID || isHfUri(model)) return spec
  return `${resolve(model)}${match ? match[0] : ''}`
}

/** What the service will run: absolute paths everywhere, and only the options given (the CLI's defaults apply). */
export function serviceDefinition(options: ServiceInstallOptions, home: string): ServiceDefinition {
  const args = ['start', '--coordinator', options.coordinator]
  if (options.model !== undefined) args.push('--model', absoluteModel(options.model))
  if (options.modelSha256 !== undefined) args.push('--model-sha256', options.modelSha256)
  if (options.slots !== undefined) args.push('--slots', String(options.slots))
  if (options.threads !== undefined) args.push('--threads', String(options.threads))
  if (options.when !== undefined) args.push('--when', options.when)
  if (options.graceMs !== undefined) args.push('--grace-ms', String(options.graceMs))
  args.push('--data-dir', resolve(options.dataDir ?? resolve(home, '.lull', 'node')))
  if (options.logLevel !== undefined) args.push('--log-level', options.logLevel)
  const environment: Record<string, string> = {}
  if (process.env.PATH !== undefined) environment.PATH = process.env.PATH
  for (const entry of options.env ?? []) {
    const index = entry.indexOf('=')
    environment[entry.slice(0, index)] = entry.slice(index + 1)
  }
  return {
    nodeBinary: process.execPath,
    cliPath: CLI_PATH,
    startArgs: args,
    environment,
    graceMs: options.graceMs ?? DEFAULT_GRACE_MS,
    home,
  }
}

/** Quotes an argv for a POSIX shell, for the commands printed to the operator. */
function shellLine(argv: string[]): string {
  return argv
    .map((word) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`))
    .join(' ')
}

async function runAll(commands: string[][]): Promise<void> {
  for (const [file, ...args] of commands) {
    if (file === undefined) continue
    try {
      await run(file, args)
    } catch (error) {
      const failed = error as { stderr?: string; message: string }
      throw new Error(`'${shellLine([file, ...args])}' failed: ${(failed.stderr ?? failed.message).trim()}`)
    }
  }
}

function platformOption(): Option {
  return new Option('--platform <platform>', 'write the file for this platform instead of this machine’s').choices([
    'macos',
    'linux',
  ])
}

async function install(options: ServiceInstallOptions): Promise<void> {
  const platform = options.platform ?? thisPlatform()
  const home = homedir()
  const paths = servicePaths(platform, home)
  const definition = serviceDefinition(options, home)
  const text = platform === 'macos' ? renderLaunchdPlist(definition) : renderSystemdUnit(definition)
  const uid = process.getuid?.() ?? 0
  const enable = enableCommand(platform, paths, uid)
  if (options.dryRun) {
    process.stdout.write(`# ${paths.file}\n${text}`)
    return
  }
  await mkdir(dirname(paths.file), { recursive: true })
  if (paths.logDirectory !== undefined) await mkdir(paths.logDirectory, { recursive: true })
  await writeFile(paths.file, text, { mode: 0o644 })
  process.stdout.write(`wrote ${paths.file}\n`)
  if (options.enable) {
    await runAll(enable)
    process.stdout.write(`enabled: ${enable.map(shellLine).join(' && ')}\n`)
  } else {
    process.stdout.write(`start it now and at every login with:\n  ${enable.map(shellLine).join(' && ')}\n`)
  }
  // enable/bootstrap do not replace a service that already runs: say how to apply the new file to it.
  const reload =
    platform === 'macos'
      ? [...disableCommand(platform, paths, uid), ...enableCommand(platform, paths, uid)]
      : [
          ['systemctl', '--user', 'daemon-reload'],
          ['systemctl', '--user', 'restart', 'lull-node'],
        ]
  process.stdout.write(`if it was already running, apply this file with:\n  ${reload.map(shellLine).join(' && ')}\n`)
  if (paths.stdoutLog !== undefined) process.stdout.write(`logs: ${paths.stdoutLog} and ${paths.stderrLog}\n`)
  else {
    process.stdout.write('logs: journalctl --user -u lull-node -f\n')
    // User units stop at logout and start at login unless the user lingers: a box nobody logs into needs it.
    process.stdout.write(`to run it while nobody is logged in: loginctl enable-linger ${userInfo().username}\n`)
  }
}

async function uninstall(options: { platform?: ServicePlatform; disable?: boolean }): Promise<void> {
  const platform = options.platform ?? thisPlatform()
  const paths = servicePaths(platform, homedir())
  const disable = disableCommand(platform, paths, process.getuid?.() ?? 0)
  // Stop the service before its file goes: launchctl bootout needs the plist.
  if (options.disable) await runAll(disable)
  let removed = true
  await rm(paths.file).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error
    removed = false
  })
  process.stdout.write(removed ? `removed ${paths.file}\n` : `nothing to remove: no ${paths.file}\n`)
  if (options.disable) process.stdout.write(`stopped: ${disable.map(shellLine).join(' && ')}\n`)
  else process.stdout.write(`if the service is running, stop it with:\n  ${disable.map(shellLine).join(' && ')}\n`)
  if (platform === 'linux' && removed) process.stdout.write('then: systemctl --user daemon-reload\n')
}

async function guarded(action: () => Promise<void>): Promise<void> {
  try {
    await action()
  } catch (error) {
    process.stderr.write(`lull-node service: ${(error as Error).message}\n`)
    process.exitCode = 1
  }
}

export function serviceCommand(): Command {
  const service = new Command('service').description(
    'run lull-node start as a service: a launchd agent on macOS, a systemd user unit on Linux',
  )
  service
    .command('install')
    .description('write the service file (HOME decides where); print, or with --enable run, the command that starts it')
    .requiredOption('--coordinator <multiaddr>', 'coordinator address (ends in /p2p/<id>)', coordinatorAddress)
    .option('--model <model>', 'lull-tiny or a path to a .gguf file (made absolute)')
    .option('--model-sha256 <hex>', 'refuse the model unless its SHA-256 is this')
    .option('--slots <n>', 'requests served at once', positiveInteger)
    .option('--threads <n>', 'CPU threads for the engine', positiveInteger)
    .option('--when <when>', 'idle, always or HH:MM-HH:MM (as for start)', whenText)
    .option('--grace-ms <ms>', 'grace period on stop; the service manager waits longer than this', nonNegativeInteger)
    .option('--data-dir <dir>', 'the node’s data dir (made absolute; default ~/.lull/node)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace')
    .option('--env <NAME=VALUE>', 'extra environment for the service (repeatable); PATH is kept', environmentEntry)
    .addOption(platformOption())
    .option('--dry-run', 'print the file instead of writing it')
    .option('--enable', 'also run the command that starts the service now and at login')
    .action((options: ServiceInstallOptions) => guarded(() => install(options)))
  service
    .command('uninstall')
    .description('remove the service file and say how to stop the running service (or stop it with --disable)')
    .addOption(platformOption())
    .option('--disable', 'stop and unload the service first')
    .action((options: { platform?: ServicePlatform; disable?: boolean }) => guarded(() => uninstall(options)))
  return service
}
