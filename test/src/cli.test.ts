import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..', '..')
const LULL = join(ROOT, 'client-sdk/dist/cli.js')
const COORDINATOR = join(ROOT, 'coordinator/dist/cli.js')
const NODE = join(ROOT, 'node/dist/bin.cjs')

async function runCli(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [script, ...args], {
      env: { ...process.env, ...env },
      timeout: 90_000,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

describe('npm start', () => {
  let stateDir: string
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'lull-start-'))
  })
  afterAll(async () => {
    await rm(stateDir, { recursive: true, force: true })
  })

  it('starts a coordinator and two nodes, streams an answer and prints the node table', async () => {
    const { code, stdout } = await runCli(join(ROOT, 'test/dist/start-local-network.js'), ['--once'], {
      LULL_STATE_DIR: stateDir,
    })
    expect(code).toBe(0)
    expect(stdout).toMatch(/coordinator listening on \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
    expect(stdout).toMatch(/A:.*\S/)
    expect(stdout).toMatch(/\d+ tokens, (stop|length), sealed end to end/)
    expect(stdout).toContain('decode tok/s')
    expect(stdout.match(/lull-tiny \([0-9a-f]{8}\)/g)).toHaveLength(2)
  })
})

describe('the command-line tools', () => {
  let network: TestNetwork
  beforeAll(async () => {
    network = await startTestNetwork({ nodes: 1, slots: 2 })
  })
  afterAll(async () => {
    await network?.stop()
  })

  it('lull ask streams an answer from a real network', async () => {
    const { code, stdout, stderr } = await runCli(LULL, [
      'ask',
      '--coordinator',
      network.address,
      '--seed',
      '4',
      '--max-tokens',
      '16',
      'Hello there',
    ])
    expect(code).toBe(0)
    expect(stdout.trim().length).toBeGreaterThan(0)
    expect(stderr).toMatch(/tokens from node/)
  })

  it('lull ask --json prints the answer with usage and node', async () => {
    const { code, stdout } = await runCli(LULL, [
      'ask',
      '--json',
      '--coordinator',
      network.address,
      '--max-tokens',
      '8',
      'Hi',
    ])
    expect(code).toBe(0)
    const reply = JSON.parse(stdout)
    expect(reply.nodeId).toBe(network.nodes[0]?.nodeId)
    expect(reply.usage.outputTokens).toBeGreaterThan(0)
  })

  it('lull ask says what to do when the model does not exist', async () => {
    const { code, stderr } = await runCli(LULL, ['ask', '--coordinator', network.address, '--model', 'missing', 'Hi'])
    expect(code).toBe(1)
    expect(stderr).toContain('served: lull-tiny')
    expect(stderr).toContain('model-not-found')
  })

  it('lull ask without a coordinator says how to give one', async () => {
    const { code, stderr } = await runCli(LULL, ['ask', 'Hi'], { LULL_COORDINATOR: '' })
    expect(code).toBe(1)
    expect(stderr).toMatch(/--coordinator|LULL_COORDINATOR/)
  })

  it('lull-coordinator start without --open wants API keys, and lull says how to get one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'lull-coordinator-cli-'))
    const readyFile = join(dataDir, 'ready')
    const coordinator = spawn(
      process.execPath,
      [COORDINATOR, 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', dataDir, '--ready-file', readyFile],
      { stdio: 'ignore' },
    )
    try {
      let address: string | undefined
      for (let tries = 0; tries < 300 && address === undefined; tries++) {
        address = await readFile(readyFile, 'utf8').catch(() => undefined)
        if (address === undefined) await new Promise((done) => setTimeout(done, 100))
      }
      expect(address).toMatch(/\/p2p\//)
      const { code, stderr } = await runCli(LULL, ['models', '--coordinator', (address as string).trim()], {
        LULL_API_KEY: '',
      })
      expect(code).toBe(1)
      expect(stderr).toMatch(/API key/)
      expect(stderr).toMatch(/keys create/)
    } finally {
      coordinator.kill('SIGKILL')
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('lull-node refuses a truncated model with a clear error instead of crashing', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'lull-node-cli-'))
    try {
      const { buildLullTinyGguf } = await import('@lull/node')
      const truncated = join(dataDir, 'broken.gguf')
      await writeFile(truncated, buildLullTinyGguf().subarray(0, 200_000))
      const { code, stderr } = await runCli(NODE, [
        'start',
        '--coordinator',
        network.address,
        '--model',
        truncated,
        '--data-dir',
        dataDir,
      ])
      expect(code).toBe(1)
      expect(stderr).toMatch(/^lull-node: .*broken\.gguf/m)
      expect(stderr).not.toMatch(/Abort|SIGABRT|GGML_ASSERT|core dumped/)
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('every command has --help', async () => {
    for (const [script, args] of [
      [LULL, ['ask', '--help']],
      [COORDINATOR, ['start', '--help']],
      [NODE, ['start', '--help']],
    ] as const) {
      const { code, stdout } = await runCli(script, [...args])
      expect(code).toBe(0)
      expect(stdout).toMatch(/Usage:/)
    }
  })
})
