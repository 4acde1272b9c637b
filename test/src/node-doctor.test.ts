import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Coordinator, createLogger } from '@lull/coordinator'
import { buildLullTinyGguf, describeCpu } from '@lull/node'
import { threadPoolSizeFor } from '@lull/node/thread-pool'
import { loadOrCreateIdentity } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NODE_CLI } from './node-process.js'

const run = promisify(execFile)

interface Check {
  name: string
  status: 'ok' | 'warn' | 'fail'
  summary: string
  fix?: string
}

async function doctor(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [NODE_CLI, 'doctor', '--threads', '1', ...args], {
      timeout: 60_000,
      env,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

async function doctorJson(
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; ok: boolean; checks: Map<string, Check> }> {
  const { code, stdout } = await doctor([...args, '--json'], env)
  const report = JSON.parse(stdout) as { ok: boolean; checks: Check[] }
  return { code, ok: report.ok, checks: new Map(report.checks.map((check) => [check.name, check])) }
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
async function unusedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('lull-node doctor', () => {
  let coordinator: Coordinator
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lull-doctor-'))
    coordinator = await Coordinator.start({
      open: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      logger: createLogger('silent'),
    })
  })
  afterAll(async () => {
    await coordinator?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('passes against a running coordinator, with the engine, hardware, data dir and model checked', async () => {
    const address = coordinator.multiaddrs[0] as string
    // Without a size in the environment, so the entry sizes libuv's pool itself.
    const { UV_THREADPOOL_SIZE: _, ...env } = process.env
    const { code, ok, checks } = await doctorJson(['--coordinator', address, '--data-dir', join(dir, 'data')], env)
    expect(code).toBe(0)
    expect(ok).toBe(true)
    expect([...checks.keys()]).toEqual(['runtime', 'engine', 'gpu', 'hardware', 'data-dir', 'model', 'coordinator'])
    expect(checks.get('runtime')).toMatchObject({ status: 'ok', summary: expect.stringContaining(process.version) })
    expect(checks.get('engine')).toMatchObject({ status: 'ok', summary: expect.stringContaining('1 threads') })
    // This machine may or may not have a GPU; either way the check says which, and never fails.
    expect(['ok', 'warn']).toContain(checks.get('gpu')?.status)
    expect(checks.get('hardware')?.summary).toMatch(/physical cores/)
    // The entry sized libuv's pool for this machine before the CLI loaded.
    const pool = threadPoolSizeFor(availableParallelism())
    expect(checks.get('hardware')?.summary).toContain(`thread pool ${pool};`)
    expect(checks.get('model')).toMatchObject({ status: 'ok', summary: expect.stringContaining('lull-tiny') })
    expect(checks.get('coordinator')).toMatchObject({
      status: 'ok',
      summary: expect.stringContaining('/lull/node/'),
    })
  })

  it('keeps a thread-pool size the environment sets', async () => {
    const { checks } = await doctorJson(['--data-dir', join(dir, 'data')], { ...process.env, UV_THREADPOOL_SIZE: '3' })
    expect(checks.get('hardware')?.summary).toContain('thread pool 3;')
  })

  it('warns when --threads leaves no core to the node loop, and says what to use', async () => {
    const { physicalCores } = await describeCpu()
    const address = coordinator.multiaddrs[0] as string
    const threads = String(physicalCores)
    const { checks } = await doctorJson([
      '--coordinator',
      address,
      '--data-dir',
      join(dir, 'data'),
      '--threads',
      threads,
    ])
    if (physicalCores === 1) {
      // One core: one thread is the only choice, and fine.
      expect(checks.get('hardware')?.status).toBe('ok')
      return
    }
    expect(checks.get('hardware')).toMatchObject({
      status: 'warn',
      fix: expect.stringContaining(`leave --threads out (${physicalCores - 1} here)`),
    })
  })

  it('fails, with a fix, when nobody listens at the coordinator address', async () => {
    const peerId = coordinator.host.peerId.toString()
    const address = `/ip4/127.0.0.1/tcp/${await unusedPort()}/p2p/${peerId}`
    const { code, stdout } = await doctor(['--coordinator', address, '--data-dir', join(dir, 'data')])
    expect(code).toBe(1)
    expect(stdout).toMatch(/FAIL\s+coordinator\s+nothing listens at 127\.0\.0\.1:\d+/)
    expect(stdout).toMatch(/fix: start the coordinator/)
    expect(stdout).toMatch(/1 failure/)
  })

  it('fails when the address is another peer, or has no peer id', async () => {
    const [live] = coordinator.multiaddrs as [string]
    const other = await Coordinator.start({
      open: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      logger: createLogger('silent'),
    })
    const otherPeer = other.host.peerId.toString()
    await other.stop()
    const impostor = live.replace(/\/p2p\/.+$/, `/p2p/${otherPeer}`)
    const wrongPeer = await doctorJson(['--coordinator', impostor, '--data-dir', join(dir, 'data')])
    expect(wrongPeer.code).toBe(1)
    expect(wrongPeer.checks.get('coordinator')).toMatchObject({
      status: 'fail',
      summary: expect.stringContaining('different peer'),
      fix: expect.stringContaining('copy its current address'),
    })
    const bare = await doctorJson(['--coordinator', live.replace(/\/p2p\/.+$/, ''), '--data-dir', join(dir, 'data')])
    expect(bare.checks.get('coordinator')).toMatchObject({ status: 'fail', fix: expect.stringContaining('/p2p/') })
  })

  it('fails within its timeout when the address accepts but never answers', async () => {
    const silent = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = silent.address() as { port: number }
      const address = `/ip4/127.0.0.1/tcp/${port}/p2p/${coordinator.host.peerId.toString()}`
      const { code, checks } = await doctorJson(['--coordinator', address, '--timeout-ms', '300', '--data-dir', dir])
      expect(code).toBe(1)
      expect(checks.get('coordinator')).toMatchObject({
        status: 'fail',
        summary: expect.stringContaining('no answer'),
        fix: expect.stringContaining('firewall'),
      })
    } finally {
      silent.close()
    }
  })

  it('shows the node id from the data dir, and fails on a damaged identity key with what to do', async () => {
    const dataDir = join(dir, 'identity-data')
    const identity = await loadOrCreateIdentity(dataDir)
    const nodeId = peerIdFromPrivateKey(identity).toString()
    const good = await doctorJson(['--data-dir', dataDir])
    expect(good.checks.get('data-dir')).toMatchObject({ status: 'ok', summary: expect.stringContaining(nodeId) })
    await writeFile(join(dataDir, 'identity.key'), 'not a key')
    const damaged = await doctorJson(['--data-dir', dataDir])
    expect(damaged.code).toBe(1)
    expect(damaged.checks.get('data-dir')).toMatchObject({
      status: 'fail',
      fix: expect.stringContaining('new identity'),
    })
  })

  it('checks a model file: valid and pinned, changed since pinned, wrong digest, damaged, missing', async () => {
    const dataDir = join(dir, 'model-data')
    const path = join(dir, 'models', 'tiny copy.gguf')
    await mkdir(join(dir, 'models'), { recursive: true })
    const bytes = buildLullTinyGguf()
    await writeFile(path, bytes)

    const fresh = await doctorJson(['--model', path, '--data-dir', dataDir])
    expect(fresh.checks.get('model')).toMatchObject({
      status: 'ok',
      summary: expect.stringContaining('not pinned yet'),
    })

    // A pin recorded by an earlier start, for other bytes.
    await mkdir(join(dataDir, 'models'), { recursive: true })
    const pinned = { sha256: 'ab'.repeat(32), sizeBytes: bytes.length, pinnedAt: '2026-01-01T00:00:00.000Z' }
    await writeFile(join(dataDir, 'models', 'pins.json'), JSON.stringify({ version: 1, pins: { [path]: pinned } }))
    const changed = await doctorJson(['--model', path, '--data-dir', dataDir])
    expect(changed.code).toBe(1)
    expect(changed.checks.get('model')).toMatchObject({
      status: 'fail',
      summary: expect.stringContaining('changed since it was pinned'),
      fix: expect.stringContaining('--model-sha256'),
    })

    // The pin an earlier start would have written for these very bytes.
    const actual = createHash('sha256').update(bytes).digest('hex')
    await writeFile(
      join(dataDir, 'models', 'pins.json'),
      JSON.stringify({ version: 1, pins: { [path]: { ...pinned, sha256: actual } } }),
    )
    const matched = await doctorJson(['--model', path, '--data-dir', dataDir])
    expect(matched.checks.get('model')).toMatchObject({
      status: 'ok',
      summary: expect.stringContaining('matches its pin'),
    })

    const wrongDigest = await doctorJson(['--model', path, '--model-sha256', 'cd'.repeat(32), '--data-dir', dir])
    expect(wrongDigest.checks.get('model')).toMatchObject({
      status: 'fail',
      summary: expect.stringContaining('cd'.repeat(32)),
    })

    const damaged = join(dir, 'models', 'damaged.gguf')
    await writeFile(damaged, bytes.subarray(0, Math.floor(bytes.length / 2)))
    const truncated = await doctorJson(['--model', damaged, '--data-dir', dir])
    expect(truncated.checks.get('model')).toMatchObject({ status: 'fail', fix: expect.stringContaining('again') })

    const missing = await doctorJson(['--model', join(dir, 'nope.gguf'), '--data-dir', dir])
    expect(missing.checks.get('model')).toMatchObject({ status: 'fail', fix: expect.stringContaining('lull-tiny') })
  })
})
