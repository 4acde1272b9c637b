import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LullClient } from '@lull/client-sdk'
import { Coordinator, createLogger } from '@lull/coordinator'
import { createLogger as createNodeLogger, LullNode, readStatusFile } from '@lull/node'
import { NODE_TO_COORDINATOR } from '@lull/proto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AWAY, ControlledSignals, OWNER_BACK } from './controlled-signals.js'
import { messageOf } from './frames.js'
import { type NodeProcess, startNodeProcess } from './node-process.js'

/** What the coordinator heard from nodes, in order: each heartbeat's state, and whether the node was still listed. */
interface HeardState {
  state: string
  reason: string | undefined
  listed: boolean
}

/** A greedy lull-tiny answer this long never ends on its own (finish `length`) and takes ~0.6 s here: 6× the 100 ms grace. */
const LONG_ANSWER_TOKENS = 1500

describe('lull-node shutdown on a signal', () => {
  let dataDir: string
  let coordinator: Coordinator
  let heard: HeardState[]
  let node: NodeProcess | undefined
  let client: LullClient | undefined
  const cleanups: Array<() => Promise<void>> = []

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lull-shutdown-'))
    heard = []
    coordinator = await Coordinator.start({
      open: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      logger: createLogger('silent'),
      frameObserver: (direction, payload) => {
        const message = direction === 'in' ? messageOf(payload, NODE_TO_COORDINATOR) : undefined
        if (message?.type !== 'heartbeat') return
        // Runs before the coordinator handles the frame: `listed` says whether the node was still registered.
        const listed = coordinator.status().nodes.some((entry) => entry.nodeId === node?.nodeId)
        heard.push({ state: message.state, reason: message.reason, listed })
      },
    })
  })

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {})
    node?.kill()
    await client?.close()
    await coordinator.stop()
    await rm(dataDir, { recursive: true, force: true })
    node = undefined
    client = undefined
  })

  async function startNode(graceMs: number): Promise<NodeProcess> {
    const address = coordinator.multiaddrs[0] as string
    node = await startNodeProcess([
      '--coordinator',
      address,
      '--when',
      'always',
      '--threads',
      '1',
      '--slots',
      '2',
      '--grace-ms',
      String(graceMs),
      '--data-dir',
      join(dataDir, 'node'),
      '--log-level',
      'warn',
    ])
    client = await LullClient.connect({ coordinator: address })
    return node
  }

  /**
   * Starts a long request and resolves once its first text arrives, with an iterator for the rest. Greedy: a sampled
   * lull-tiny answer may end (EOS) after a few sentences, which on a fast machine lands inside a 100 ms grace and
   * leaves nothing to hand back (seen once in CI); greedily it runs to `maxTokens`.
   */
  async function longRequest(connected: LullClient) {
    const dispatchedTo: string[] = []
    const stream = connected.chat({
      model: 'lull-tiny',
      messages: [{ role: 'user', content: 'Tell me a long story' }],
      maxTokens: LONG_ANSWER_TOKENS,
      temperature: 0,
      maxRetries: 0,
      maxResumes: 0,
      onDispatched: (info) => dispatchedTo.push(info.nodeId),
    })
    const iterator = stream[Symbol.asyncIterator]()
    const first = await iterator.next()
    expect(first.done).toBe(false)
    return { iterator, dispatchedTo }
  }

  it('SIGTERM mid-request: the coordinator hears draining, the request completes, the process exits 0 within the grace', async () => {
    const graceMs = 60_000
    const started = await startNode(graceMs)
    const { iterator, dispatchedTo } = await longRequest(client as LullClient)

    const signalledAtMs = performance.now()
    started.child.kill('SIGTERM')
    let finishReason: string | undefined
    let outputTokens = 0
    for (;;) {
      const next = await iterator.next()
      if (next.done) break
      if (next.value.type === 'finish') {
        finishReason = next.value.finishReason
        outputTokens = next.value.usage.outputTokens
      }
    }
    // The answer ran to its end on the same node: not cancelled, not failed over.
    expect(finishReason).toBe('length')
    expect(outputTokens).toBeGreaterThan(0)
    expect(dispatchedTo).toEqual([started.nodeId])

    expect(await started.exited).toBe(0)
    expect(performance.now() - signalledAtMs).toBeLessThan(graceMs)
    expect(started.stderr()).toMatch(/stopped \(1 finished, 0 handed back\)/)
    // The coordinator heard `draining` while the node was still registered, and the node is gone now.
    const draining = heard.find((entry) => entry.state === 'draining')
    expect(draining).toMatchObject({ reason: 'shutting down', listed: true })
    expect(coordinator.status().nodes.some((entry) => entry.nodeId === started.nodeId)).toBe(false)
    // What `lull-node status` reads afterwards: a node that stopped, not one still draining.
    const status = await readStatusFile(join(dataDir, 'node'))
    expect(status).toMatchObject({ kind: 'found', running: false, report: { state: 'offline' } })
  })

  it('after the grace period the running request is handed back and the process still exits 0', async () => {
    const started = await startNode(100)
    const { iterator } = await longRequest(client as LullClient)
    started.child.kill('SIGTERM')
    // One node only: nobody can take the rest of the answer, so the client gets the retryable node-lost.
    let failure: unknown
    try {
      for (;;) if ((await iterator.next()).done) break
    } catch (error) {
      failure = error
    }
    expect(failure).toMatchObject({ code: 'node-lost', isRetryable: true })
    expect(await started.exited).toBe(0)
    expect(started.stderr()).toMatch(/stopped \(0 finished, 1 handed back\)/)
    expect(heard.some((entry) => entry.state === 'draining' && entry.listed)).toBe(true)
  })

  it('a handed-back request is finished by another node: the client still gets one whole answer', async () => {
    // A second node, in this process, paused by its (simulated) owner so the long request lands on the CLI node.
    const signals = new ControlledSignals()
    signals.current = OWNER_BACK
    const second = await LullNode.start({
      coordinator: coordinator.multiaddrs[0] as string,
      model: 'lull-tiny',
      dataDir: join(dataDir, 'second'),
      slots: 1,
      threads: 1,
      when: 'idle',
      idleSignals: signals,
      idlePollIntervalMs: 60_000,
      statusFile: false,
      logger: createNodeLogger('silent'),
    })
    cleanups.push(() => second.stop())
    const started = await startNode(100)
    const resuming = await LullClient.connect({
      coordinator: coordinator.multiaddrs[0] as string,
      catalogueMaxAgeMs: 0,
    })
    cleanups.push(() => resuming.close())
    const dispatchedTo: string[] = []
    const stream = resuming.chat({
      model: 'lull-tiny',
      messages: [{ role: 'user', content: 'Tell me a long story' }],
      maxTokens: LONG_ANSWER_TOKENS,
      temperature: 0,
      onDispatched: (info) => dispatchedTo.push(info.nodeId),
    })
    const iterator = stream[Symbol.asyncIterator]()
    expect((await iterator.next()).done).toBe(false)
    expect(dispatchedTo).toEqual([started.nodeId])

    // The second node's owner leaves; then the CLI node is told to stop, with a grace period too short to finish.
    signals.current = AWAY
    await second.checkIdle()
    started.child.kill('SIGTERM')
    let finishReason: string | undefined
    for (;;) {
      const next = await iterator.next()
      if (next.done) break
      if (next.value.type === 'finish') finishReason = next.value.finishReason
    }
    expect(finishReason).toBe('length')
    expect(dispatchedTo).toEqual([started.nodeId, second.nodeId])
    expect(await started.exited).toBe(0)
    expect(started.stderr()).toMatch(/stopped \(0 finished, 1 handed back\)/)
  })

  it('a second signal exits at once', async () => {
    const started = await startNode(60_000)
    const { iterator } = await longRequest(client as LullClient)
    started.child.kill('SIGTERM')
    started.child.kill('SIGINT')
    expect(await started.exited).toBe(1)
    expect(started.stderr()).toContain('again, exiting now')
    await iterator.return?.(undefined)
  })
})
