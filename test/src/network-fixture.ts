import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LullClient } from '@lull/client-sdk'
import { Coordinator, type CoordinatorOptions, createLogger as createCoordinatorLogger } from '@lull/coordinator'
import { createLogger as createNodeLogger, LullNode, type LullNodeOptions } from '@lull/node'
import type { FrameObserver } from '@lull/proto'

export interface TestNetworkOptions {
  nodes?: number
  slots?: number
  frameObserver?: FrameObserver
  /** Extra options for node `index` (idle policy, injected signals, …); they override the fixture's. */
  nodeOptions?: (index: number) => Partial<LullNodeOptions>
  /** Extra coordinator options (queue bounds, timings). */
  coordinatorOptions?: Partial<CoordinatorOptions>
}

export interface TestNetwork {
  coordinator: Coordinator
  address: string
  nodes: LullNode[]
  dataDir: string
  client(): Promise<LullClient>
  /** Waits until the catalogue lists `count` nodes for lull-tiny. */
  waitForNodes(client: LullClient, count: number): Promise<void>
  stop(): Promise<void>
}

/** A real network on 127.0.0.1: a coordinator and `nodes` nodes running lull-tiny, all in this process. */
export async function startTestNetwork(options: TestNetworkOptions = {}): Promise<TestNetwork> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lull-test-'))
  const coordinator = await Coordinator.start({
    open: true,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    logger: createCoordinatorLogger('silent'),
    ...(options.frameObserver === undefined ? {} : { frameObserver: options.frameObserver }),
    ...options.coordinatorOptions,
  })
  const address = coordinator.multiaddrs[0] as string
  const nodes: LullNode[] = []
  const clients: LullClient[] = []
  const stop = async (): Promise<void> => {
    await Promise.allSettled(clients.map((client) => client.close()))
    await Promise.allSettled(nodes.map((node) => node.stop()))
    await coordinator.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
  try {
    for (let index = 0; index < (options.nodes ?? 2); index++) {
      nodes.push(
        await LullNode.start({
          coordinator: address,
          model: 'lull-tiny',
          dataDir: join(dataDir, `node-${index}`),
          slots: options.slots ?? 2,
          threads: 1,
          logger: createNodeLogger('silent'),
          ...options.nodeOptions?.(index),
        }),
      )
    }
  } catch (error) {
    await stop()
    throw error
  }
  return {
    coordinator,
    address,
    nodes,
    dataDir,
    async client() {
      const client = await LullClient.connect({ coordinator: address })
      clients.push(client)
      return client
    },
    async waitForNodes(client, count) {
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline) {
        const models = await client.models()
        if ((models.find((model) => model.id === 'lull-tiny')?.nodes.length ?? 0) >= count) return
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      throw new Error(`the catalogue did not list ${count} nodes within 20 s`)
    },
    stop,
  }
}

/**
 * An open coordinator on 127.0.0.1 whose identity lives in `dataDir`: started again with the same `dataDir` and
 * `port`, it has the same address (for restart tests). Port 0 picks a free one.
 */
export function startCoordinatorAt(dataDir: string, port: number): Promise<Coordinator> {
  return Coordinator.start({
    open: true,
    dataDir,
    listen: [`/ip4/127.0.0.1/tcp/${port}`],
    logger: createCoordinatorLogger('silent'),
  })
}
