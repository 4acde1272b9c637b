/**
 * The files that run `lull-node start` as a per-user service: a launchd agent on macOS and a systemd user unit on
 * Linux. Pure functions from a {@link ServiceDefinition} to file contents and paths, so tests can parse what would
 * be installed without touching the machine's service manager.
 */
import { join } from 'node:path'
import { build as buildPlist } from 'plist'
import { SERVICE_STOP_MARGIN_MS, SERVICE_THROTTLE_INTERVAL_S } from '../constants.js'

export type ServicePlatform = 'macos' | 'linux'

/** The launchd label and systemd unit name. */
export const LAUNCHD_LABEL = 'dev.lull.node'
export const SYSTEMD_UNIT_NAME = 'lull-node.service'

export interface ServiceDefinition {
  /** Absolute path of the Node.js binary that runs the CLI. */
  nodeBinary: string
  /** Absolute path of the lull-node CLI script. */
  cliPath: string
  /** Arguments after the CLI path: `start` and its options. */
  startArgs: string[]
  /** Environment the service runs with (PATH at least, so node-llama-cpp finds GPU tools). */
  environment: Record<string, string>
  /** The node's grace period on SIGTERM; the service manager waits longer than this before it kills. */
  graceMs: number
  /** The user's home directory (files go under it). */
  home: string
}

export interface ServicePaths {
  /** The file `install` writes and `uninstall` removes. */
  file: string
  /** Where stdout and stderr go (launchd only; systemd sends them to the journal). */
  logDirectory?: string
  stdoutLog?: string
  stderrLog?: string
}

export function servicePaths(platform: ServicePlatform, home: string): ServicePaths {
  if (platform === 'macos') {
    const logDirectory = join(home, 'Library', 'Logs', 'lull-node')
    return {
      file: join(home, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`),
      logDirectory,
      stdoutLog: join(logDirectory, 'lull-node.log'),
      stderrLog: join(logDirectory, 'lull-node.err.log'),
    }
  }
  return { file: join(home, '.config', 'systemd', 'user', SYSTEMD_UNIT_NAME) }
}

/** Seconds the service manager waits after SIGTERM before SIGKILL: the grace period plus a margin to hand back. */
export function stopTimeoutSeconds(graceMs: number): number {
  return Math.ceil((graceMs + SERVICE_STOP_MARGIN_MS) / 1_000)
}

/** The launchd agent (a property list). KeepAlive restarts the node when it crashes, not when it was stopped. */
export function renderLaunchdPlist(definition: ServiceDefinition): string {
  const paths = servicePaths('macos', definition.home)
  return `${buildPlist({
    Label: LAUNCHD_LABEL,
    ProgramArguments: [definition.nodeBinary, definition.cliPath, ...definition.startArgs],
    RunAtLoad: true,
    KeepAlive: { SuccessfulExit: false },
    ThrottleInterval: SERVICE_THROTTLE_INTERVAL_S,
    ExitTimeOut: stopTimeoutSeconds(definition.graceMs),
    StandardOutPath: paths.stdoutLog ?? '',
    StandardErrorPath: paths.stderrLog ?? '',
    EnvironmentVariables: { ...definition.environment },
    WorkingDirectory: definition.home,
  })}\n`
}

const SAFE_SYSTEMD_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/

/**
 * Quotes one argument for a systemd command line (systemd.service(5), "Command lines"): words with anything but
 * plain characters go in double quotes with C-style escapes; `%` (specifiers) is doubled everywhere, and `$`
 * (variable expansion in ExecStart=) is doubled unless `expandsVariables` is false (Environment=). A lone `;` would separate commands and is escaped.
 */
export function escapeSystemdArgument(argument: string, options: { expandsVariables?: boolean } = {}): string {
  const expandsVariables = options.expandsVariables ?? true
  if (argument.length > 0 && SAFE_SYSTEMD_WORD.test(argument)) return argument.replaceAll('%', '%%')
  if (argument === ';') return '\\;'
  let quoted = '"'
  for (const character of argument) {
    switch (character) {
      case '\\':
        quoted += '\\\\'
        break
      case '"':
        quoted += '\\"'
        break
      case '\n':
        quoted += '\\n'
        break
      case '\t':
        quoted += '\\t'
        break
      case '\r':
        quoted += '\\r'
        break
      case '%':
        quoted += '%%'
        break
      case '$':
        quoted += expandsVariables ? '$$' : '$'
        break
      default: {
        const code = character.codePointAt(0) ?? 0
        if (code < 0x20 || code === 0x7f) quoted += `\\x${code.toString(16).padStart(2, '0')}`
        else quoted += character
      }
    }
  }
  return `${quoted}"`
}

/** One `Environment=` assignment, quoted as a single word (its value may hold spaces; `$` is literal there). */
function environmentAssignment(name: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid environment variable name: ${name}`)
  return escapeSystemdArgument(`${name}=${value}`, { expandsVariables: false })
}

/** The systemd user unit. Restarts on failure only; SIGTERM starts the node's drain; the stop timeout outlasts it. */
export function renderSystemdUnit(definition: ServiceDefinition): string {
  const command = [definition.nodeBinary, definition.cliPath, ...definition.startArgs].map((argument) =>
    escapeSystemdArgument(argument),
  )
  const environment = Object.entries(definition.environment).map(
    ([name, value]) => `Environment=${environmentAssignment(name, value)}`,
  )
  return [
    '[Unit]',
    'Description=Lull node: serves a model to a Lull network while this machine is idle',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${command.join(' ')}`,
    ...environment,
    'Restart=on-failure',
    `RestartSec=${SERVICE_THROTTLE_INTERVAL_S}`,
    'KillSignal=SIGTERM',
    'KillMode=mixed',
    `TimeoutStopSec=${stopTimeoutSeconds(definition.graceMs)}`,
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n')
}

/** The command that loads and starts the installed service, as an argv. */
export function enableCommand(platform: ServicePlatform, paths: ServicePaths, uid: number): string[][] {
  if (platform === 'macos') return [['launchctl', 'bootstrap', `gui/${uid}`, paths.file]]
  return [
    ['systemctl', '--user', 'daemon-reload'],
    ['systemctl', '--user', 'enable', '--now', 'lull-node'],
  ]
}

/** The command that stops and unloads the running service, as an argv. */
export function disableCommand(platform: ServicePlatform, paths: ServicePaths, uid: number): string[][] {
  if (platform === 'macos') return [['launchctl', 'bootout', `gui/${uid}`, paths.file]]
  return [['systemctl', '--user', 'disable', '--now', 'lull-node']]
}
