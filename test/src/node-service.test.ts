import { execFile } from 'node:child_process'
import { access, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { parse as parsePlist } from 'plist'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..', '..')
const NODE_CLI = join(ROOT, 'node/dist/bin.cjs')
const COORDINATOR = '/ip4/127.0.0.1/tcp/4710/p2p/12D3KooWGzFv7DFHzLXHEcKN2Ty8bfrc1wRyLkN5fVmkHajVFsKd'
/** A model path that needs every kind of quoting: spaces, quotes, a backslash, `%` (specifier) and `$` (variable). */
const AWKWARD_MODEL = `/models/my "best" model/50% of \\$HOME's $PATH.gguf`

async function lullNode(args: string[], home: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, [NODE_CLI, ...args], {
      env: { ...process.env, HOME: home },
      timeout: 30_000,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

/** Sections of a unit file: each key maps to its values in order (keys may repeat). */
function parseUnitFile(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[([^\]]+)\]$/.exec(line)
    if (header) {
      current = new Map()
      sections.set(header[1] as string, current)
      continue
    }
    const index = line.indexOf('=')
    if (current === undefined || index < 1) throw new Error(`not a unit file line: ${line}`)
    const key = line.slice(0, index)
    current.set(key, [...(current.get(key) ?? []), line.slice(index + 1)])
  }
  return sections
}

/**
 * Splits a command line as systemd.service(5) and systemd.syntax(7) describe, written independently of the
 * generator: specifiers first (`%%` is the only one the node's arguments may produce), then words with double or
 * single quotes and C escapes, then `$$` to `$` when `expandsVariables` (ExecStart=; a bare `$NAME` would expand).
 */
function splitSystemdLine(line: string, expandsVariables: boolean): string[] {
  const specified = line.replace(/%(.)/g, (_, next: string) => {
    if (next !== '%') throw new Error(`specifier %${next} would be expanded`)
    return '%'
  })
  const words: string[] = []
  let word: string | undefined
  let quote: string | undefined
  const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", ';': ';' }
  for (let index = 0; index < specified.length; index++) {
    const character = specified[index] as string
    if (character === '\\') {
      const next = specified[index + 1] as string
      if (next === 'x') {
        word = (word ?? '') + String.fromCharCode(Number.parseInt(specified.slice(index + 2, index + 4), 16))
        index += 3
      } else {
        const escaped = escapes[next]
        if (escaped === undefined) throw new Error(`unknown escape \\${next}`)
        word = (word ?? '') + escaped
        index += 1
      }
    } else if (quote !== undefined) {
      if (character === quote) quote = undefined
      else word = (word ?? '') + character
    } else if (character === '"' || character === "'") {
      quote = character
      word ??= ''
    } else if (character === ' ' || character === '\t') {
      if (word !== undefined) words.push(word)
      word = undefined
    } else {
      word = (word ?? '') + character
    }
  }
  if (quote !== undefined) throw new Error('unterminated quote')
  if (word !== undefined) words.push(word)
  if (!expandsVariables) return words
  return words.map((text) =>
    text.replace(/\$(\$|[A-Za-z_{])/g, (_, next: string) => {
      if (next !== '$') throw new Error(`$${next}… would be expanded`)
      return '$'
    }),
  )
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

async function hasSystemdAnalyze(): Promise<boolean> {
  return run('systemd-analyze', ['--version']).then(
    () => true,
    () => false,
  )
}

describe('lull-node service', () => {
  let home: string
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'lull-service-home-'))
  })
  afterEach(async () => {
    await rm(home, { recursive: true, force: true })
  })

  it('installs a systemd user unit whose ExecStart round-trips every argument, and prints how to enable it', async () => {
    const { code, stdout } = await lullNode(
      [
        'service',
        'install',
        '--platform',
        'linux',
        '--coordinator',
        COORDINATOR,
        '--model',
        AWKWARD_MODEL,
        '--when',
        '22:00-07:00',
        '--grace-ms',
        '30000',
        '--data-dir',
        'relative data\twith a tab,\na newline; and "quotes"',
        '--env',
        'LULL_NOTE=a b "c" $d 5%',
      ],
      home,
    )
    expect(code).toBe(0)
    const file = join(home, '.config/systemd/user/lull-node.service')
    expect(stdout).toContain(`wrote ${file}`)
    expect(stdout).toContain('systemctl --user enable --now lull-node')
    expect(stdout).toContain('loginctl enable-linger')
    expect(stdout).toContain('systemctl --user daemon-reload && systemctl --user restart lull-node')
    const unit = parseUnitFile(await readFile(file, 'utf8'))
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install'])
    const service = unit.get('Service')!
    expect(service.get('Restart')).toEqual(['on-failure'])
    expect(service.get('KillSignal')).toEqual(['SIGTERM'])
    // Longer than the grace period the node was given, so a draining node is not killed.
    expect(Number(service.get('TimeoutStopSec')?.[0])).toBeGreaterThan(30)
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['default.target'])
    const execStart = service.get('ExecStart')
    expect(execStart).toHaveLength(1)
    expect(splitSystemdLine(execStart?.[0] as string, true)).toEqual([
      process.execPath,
      NODE_CLI,
      'start',
      '--coordinator',
      COORDINATOR,
      '--model',
      AWKWARD_MODEL,
      '--when',
      '22:00-07:00',
      '--grace-ms',
      '30000',
      '--data-dir',
      resolve('relative data\twith a tab,\na newline; and "quotes"'),
    ])
    const environment = (service.get('Environment') ?? []).flatMap((line) => splitSystemdLine(line, false))
    expect(environment).toContain('LULL_NOTE=a b "c" $d 5%')
    expect(environment).toContain(`PATH=${process.env.PATH}`)

    if (await hasSystemdAnalyze()) {
      // systemd's own parser: an unknown key, a bad value or a relative binary is reported on stderr.
      const verified = await run('systemd-analyze', ['verify', '--man=no', file]).then(
        ({ stderr }) => ({ code: 0, stderr }),
        (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
      )
      expect(verified).toEqual({ code: 0, stderr: '' })
    }
  })

  it('installs a launchd agent with absolute program arguments, keep-alive and log paths', async () => {
    const { code, stdout } = await lullNode(
      [
        'service',
        'install',
        '--platform',
        'macos',
        '--coordinator',
        COORDINATOR,
        '--model',
        AWKWARD_MODEL,
        '--slots',
        '2',
      ],
      home,
    )
    expect(code).toBe(0)
    const file = join(home, 'Library/LaunchAgents/dev.lull.node.plist')
    expect(stdout).toMatch(new RegExp(`launchctl bootstrap gui/\\d+ ${file}`))
    expect(stdout).toMatch(new RegExp(`launchctl bootout gui/\\d+ ${file} && launchctl bootstrap gui/\\d+ ${file}`))
    const agent = parsePlist(await readFile(file, 'utf8')) as Record<string, unknown>
    expect(agent.Label).toBe('dev.lull.node')
    expect(agent.ProgramArguments).toEqual([
      process.execPath,
      NODE_CLI,
      'start',
      '--coordinator',
      COORDINATOR,
      '--model',
      AWKWARD_MODEL,
      '--slots',
      '2',
      '--data-dir',
      join(home, '.lull/node'),
    ])
    expect(agent.RunAtLoad).toBe(true)
    expect(agent.KeepAlive).toEqual({ SuccessfulExit: false })
    expect(agent.ExitTimeOut).toBeGreaterThan(10)
    const logDirectory = join(home, 'Library/Logs/lull-node')
    expect(agent.StandardOutPath).toBe(join(logDirectory, 'lull-node.log'))
    expect(agent.StandardErrorPath).toBe(join(logDirectory, 'lull-node.err.log'))
    expect(await exists(logDirectory)).toBe(true)
    expect((agent.EnvironmentVariables as Record<string, string>).PATH).toBe(process.env.PATH)
  })

  it('prints the file with --dry-run and writes nothing', async () => {
    const { code, stdout } = await lullNode(
      [
        'service',
        'install',
        '--platform',
        'linux',
        '--dry-run',
        '--coordinator',
        COORDINATOR,
        '--model',
        'hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M',
      ],
      home,
    )
    expect(code).toBe(0)
    expect(stdout).toContain('[Service]')
    // A model URI is passed on as it is (only local paths are made absolute).
    expect(stdout).toContain(' --model hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M ')
    expect(await exists(join(home, '.config'))).toBe(false)
  })

  it('uninstall removes the file and says how to stop the running service', async () => {
    expect(
      (await lullNode(['service', 'install', '--platform', 'linux', '--coordinator', COORDINATOR], home)).code,
    ).toBe(0)
    const file = join(home, '.config/systemd/user/lull-node.service')
    expect(await exists(file)).toBe(true)
    const removed = await lullNode(['service', 'uninstall', '--platform', 'linux'], home)
    expect(removed.code).toBe(0)
    expect(removed.stdout).toContain(`removed ${file}`)
    expect(removed.stdout).toContain('systemctl --user disable --now lull-node')
    expect(await exists(file)).toBe(false)
    const again = await lullNode(['service', 'uninstall', '--platform', 'macos'], home)
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('nothing to remove')
    expect(again.stdout).toMatch(/launchctl bootout gui\/\d+/)
  })

  it('refuses a coordinator address without a peer id and says what to give', async () => {
    const { code, stderr } = await lullNode(
      ['service', 'install', '--platform', 'linux', '--coordinator', '/ip4/127.0.0.1/tcp/4710'],
      home,
    )
    expect(code).not.toBe(0)
    expect(stderr).toContain('/p2p/')
    expect(await exists(join(home, '.config'))).toBe(false)
  })
})
