import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger, LullNode } from '@lull/node'
import { HostileCoordinator } from './hostile-coordinator.js'

export interface HostileNetwork {
  hostile: HostileCoordinator
  nodes: LullNode[]
  stop(): Promise<void>
}

/** Real nodes (lull-tiny, 2 slots, 1 thread) registered with a {@link HostileCoordinator} on 127.0.0.1. */
export async function startHostileNetwork(nodeCount: number): Promise<HostileNetwork> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lull-hostile-'))
  const hostile = await HostileCoordinator.start()
  const nodes: LullNode[] = []
  const stop = async (): Promise<void> => {
    await Promise.allSettled(nodes.map((node) => node.stop()))
    await hostile.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
  try {
    for (let index = 0; index < nodeCount; index++) {
      nodes.push(
        await LullNode.start({
          coordinator: hostile.address,
          model: 'lull-tiny',
          dataDir: join(dataDir, `node-${index}`),
          slots: 2,
          threads: 1,
          logger: createLogger('silent'),
        }),
      )
    }
    await hostile.waitForNodes(nodeCount)
  } catch (error) {
    await stop()
    throw error
  }
  return { hostile, nodes, stop }
}
