import type { LullNode } from '@lull/node'
import { AWAY, ControlledSignals, OWNER_BACK } from './controlled-signals.js'
import { startTestNetwork, type TestNetwork, type TestNetworkOptions } from './network-fixture.js'

export interface PausableNetwork extends TestNetwork {
  /** The owner comes back to every node: they pause, and the coordinator sees it before this resolves. */
  pause(): Promise<void>
  /** The owners leave: the nodes serve again, and the coordinator places what waited. */
  resume(): Promise<void>
  /** Requests waiting in the coordinator's lull-tiny queue. */
  queued(): number
  /** Resolves once `condition` holds (polled), or rejects after `timeoutMs`. */
  until(condition: () => boolean, what: string, timeoutMs?: number): Promise<void>
}

/**
 * A real network (coordinator and lull-tiny nodes on 127.0.0.1) whose nodes the test pauses and resumes through
 * their real idle policy. Pausing lets a test fill the coordinator's queue exactly as it wants before any of it is
 * served, so that what it asserts (an order, a batch) does not depend on timing.
 */
export async function startPausableNetwork(options: TestNetworkOptions = {}): Promise<PausableNetwork> {
  const signals: ControlledSignals[] = []
  const network = await startTestNetwork({
    ...options,
    nodeOptions: (index) => {
      const source = new ControlledSignals()
      signals[index] = source
      return {
        when: 'idle',
        idleSignals: source,
        // Polls come from the test (checkIdle).
        idlePollIntervalMs: 60_000,
        statusFile: false,
        ...options.nodeOptions?.(index),
      }
    },
  })
  const until = async (condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
  const coordinatorStates = () =>
    network.nodes.map(
      (node: LullNode) => network.coordinator.status().nodes.find((entry) => entry.nodeId === node.nodeId)?.state,
    )
  const setOwner = async (present: boolean): Promise<void> => {
    for (const source of signals) source.current = present ? OWNER_BACK : AWAY
    for (const node of network.nodes) await node.checkIdle()
    const expected = present ? 'paused' : 'serving'
    await until(() => coordinatorStates().every((state) => state === expected), `the coordinator to see ${expected}`)
  }
  return {
    ...network,
    pause: () => setOwner(true),
    resume: () => setOwner(false),
    queued: () => network.coordinator.status().totals.queued.find((entry) => entry.modelId === 'lull-tiny')?.depth ?? 0,
    until,
  }
}
