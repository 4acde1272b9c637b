import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConnectionError, LullClient } from '@lull/client-sdk'
import { createLogger as createNodeLogger, LullNode } from '@lull/node'
import { afterEach, describe, expect, it } from 'vitest'
import { startCoordinatorAt } from './network-fixture.js'
import { until } from './until.js'

/**
 * The client reconnects to its coordinator by itself: a LullClient made before the coordinator restarted (same
 * identity, same address) keeps working without the app doing anything.
 */
const COORDINATOR_CLI = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'coordinator/dist/cli.js')

/** `lull-coordinator start` as its own process; resolves with its address once it listens. */
async function startCoordinatorProcess(
  dataDir: string,
  port: number,
): Promise<{ child: ChildProcess; address: string }> {
  const readyFile = join(dataDir, `ready-${Date.now()}`)
  const child = spawn(
    process.execPath,
    [
      COORDINATOR_CLI,
      'start',
      '--open',
      '--listen',
      `/ip4/127.0.0.1/tcp/${port}`,
      '--data-dir',
      dataDir,
      '--ready-file',
      readyFile,
      '--log-level',
      'error',
    ],
    { stdio: 'ignore' },
  )
  let address = ''
  await until(
    async () => {
      address = (await readFile(readyFile, 'utf8').catch(() => '')).trim()
      return child.exitCode === null && address !== ''
    },
    'the coordinator process listening',
    60_000,
  )
  return { child, address }
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise))
  child.kill('SIGKILL')
  await exited
}

const ASK = { model: 'lull-tiny', messages: [{ role: 'user' as const, content: 'Hello again' }], maxTokens: 8 }

describe('a client whose coordinator restarts', () => {
  const cleanups: Array<() => Promise<unknown>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    cleanups.length = 0
  })

  it('keeps working: the next calls reconnect on their own', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lull-client-reconnect-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const coordinatorDir = join(dir, 'coordinator')
    let coordinator = await startCoordinatorAt(coordinatorDir, 0)
    cleanups.push(() => coordinator.stop())
    const address = coordinator.multiaddrs[0] as string
    const port = Number(/\/tcp\/(\d+)\//.exec(address)?.[1])
    const node = await LullNode.start({
      coordinator: address,
      model: 'lull-tiny',
      dataDir: join(dir, 'node'),
      slots: 1,
      threads: 1,
      logger: createNodeLogger('silent'),
    })
    cleanups.push(() => node.stop())
    const client = await LullClient.connect({ coordinator: address })
    cleanups.push(() => client.close())
    expect((await client.chat(ASK).final()).nodeId).toBe(node.nodeId)

    // While the coordinator is down, a call fails with a retryable connection error (after its retries).
    await coordinator.stop()
    const whileDown = await client
      .chat({ ...ASK, maxRetries: 0 })
      .final()
      .catch((error: unknown) => error)
    expect(whileDown).toBeInstanceOf(ConnectionError)
    expect((whileDown as ConnectionError).isRetryable).toBe(true)
    await expect(client.models()).rejects.toBeInstanceOf(ConnectionError)

    // Back with the same identity on the same address; the node re-registers by itself.
    coordinator = await startCoordinatorAt(coordinatorDir, port)
    expect(coordinator.multiaddrs[0]).toBe(address)
    await until(
      () => coordinator.status().nodes.some((entry) => entry.nodeId === node.nodeId),
      'the node re-registering',
      30_000,
    )

    // The same client object, nothing done by the app: the catalogue and a chat work again.
    const models = await client.models()
    expect(models.find((model) => model.id === 'lull-tiny')?.nodes.map((entry) => entry.nodeId)).toEqual([node.nodeId])
    const reply = await client.chat(ASK).final()
    expect(reply.nodeId).toBe(node.nodeId)
    expect(reply.text.length).toBeGreaterThan(0)
    expect(coordinator.status().totals.requestsServed).toBe(1)
  })

  it('keeps working after its coordinator process is killed (SIGKILL) and started again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lull-client-reconnect-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const coordinatorDir = join(dir, 'coordinator')
    let coordinator = await startCoordinatorProcess(coordinatorDir, 0)
    cleanups.push(() => killProcess(coordinator.child))
    const { address } = coordinator
    const port = Number(/\/tcp\/(\d+)\//.exec(address)?.[1])
    const node = await LullNode.start({
      coordinator: address,
      model: 'lull-tiny',
      dataDir: join(dir, 'node'),
      slots: 1,
      threads: 1,
      logger: createNodeLogger('silent'),
    })
    cleanups.push(() => node.stop())
    const client = await LullClient.connect({ coordinator: address })
    cleanups.push(() => client.close())
    expect((await client.chat(ASK).final()).nodeId).toBe(node.nodeId)

    // No goodbye: the process dies, and comes back with the same identity on the same port.
    await killProcess(coordinator.child)
    coordinator = await startCoordinatorProcess(coordinatorDir, port)
    expect(coordinator.address).toBe(address)
    // Watched through a second client, so the first one makes no call until the node is back.
    const observer = await LullClient.connect({ coordinator: address })
    cleanups.push(() => observer.close())
    await until(
      async () =>
        (
          await observer
            .models()
            .then((models) => models.flatMap((model) => model.nodes.map((entry) => entry.nodeId)))
            .catch(() => [] as string[])
        ).includes(node.nodeId),
      'the node re-registering',
      30_000,
    )
    // The first calls the old client makes after the crash succeed: no stale connection is left to fail on.
    const models = await client.models()
    expect(models.flatMap((model) => model.nodes.map((entry) => entry.nodeId))).toEqual([node.nodeId])
    const reply = await client.chat(ASK).final()
    expect(reply.nodeId).toBe(node.nodeId)
  })
})
