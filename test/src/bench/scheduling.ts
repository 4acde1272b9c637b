/**
 * Benchmark (not a test): the coordinator's scheduling with 1,000 registered nodes over real libp2p.
 *
 *   npm run bench:scheduling -- [--nodes 1000] [--slots 8] [--seconds 10] [--concurrency 64] [--tokens 8]
 *     [--tokens-per-second 1000] [--json] [--out DIR]
 *
 * Three processes, as on a real network: this one runs the coordinator; a child runs the simulated nodes (each its
 * own libp2p host and Ed25519 identity, one real connection and a real signed certificate each; on a dispatch
 * they stream opaque chunks at a set token rate, then end); another child runs the clients, which submit sealed
 * requests (each sealed with HPKE for 3 random candidates, from a pre-sealed pool: sealing is the client's cost,
 * not the coordinator's, and the simulated nodes never open them) as fast as `--concurrency` streams allow.
 *
 * Measures end-to-end requests/s through the coordinator, and the decision itself (placement, timed with
 * performance.now() inside the coordinator through its `onDecisionTimed` hook) as p50/p99. Then, with the same
 * registry of 1,000 real registrations, the decision alone in a loop (placements/s). Last, the baseline in the same
 * run: libp2p alone, a bare host echoing messages (transport-floor.ts), whose CPU per message times the messages a
 * request sends through the coordinator is the floor under its cost per request. Prints a table and writes
 * bench-results/scheduling.json. Targets: >= 5,000 requests/s and p99 decision < 2 ms.
 */
import '@lull/proto/polyfill'
import { type ChildProcess, fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import { Coordinator, createLogger, placeRequest } from '@lull/coordinator'
import { createLullHost, type RequestHeader } from '@lull/proto'
import { printTable, progressLine, writeResult } from './report.js'
import { runClients } from './scheduling-clients.js'
import { runSimulatedNodes, TOKENS_PER_CHUNK } from './scheduling-nodes.js'
import { ECHO_MESSAGE_BYTES, type EchoResult, runEchoClients, serveEcho } from './transport-floor.js'

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'coordinator' },
    coordinator: { type: 'string' },
    nodes: { type: 'string', default: '1000' },
    slots: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '8' },
    'tokens-per-second': { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})

const settings = {
  nodes: Number(values.nodes),
  slots: Number(values.slots),
  seconds: Number(values.seconds),
  concurrency: Number(values.concurrency),
  tokens: Number(values.tokens),
  tokensPerSecond: Number(values['tokens-per-second']),
}
for (const [name, value] of Object.entries(settings)) {
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`--${name} takes a positive number\n`)
    process.exit(2)
  }
}
const TARGET_REQUESTS_PER_SECOND = 5_000
const TARGET_DECISION_P99_MS = 2

if (values.role === 'nodes') {
  await runSimulatedNodes(values.coordinator ?? '', settings)
} else if (values.role === 'clients') {
  await runClients(values.coordinator ?? '', settings)
} else if (values.role === 'echo-clients') {
  await runEchoClients(values.coordinator ?? '', settings)
} else {
  await runCoordinator()
}

/** Starts a child in `role`, and resolves with the first message it sends (its result). */
function child(
  role: string,
  address: string,
  overrides: Record<string, string> = {},
): { process: ChildProcess; result: Promise<unknown> } {
  const args = ['--role', role, '--coordinator', address]
  for (const [name, value] of Object.entries({ ...values, ...overrides })) {
    if (name === 'role' || name === 'coordinator' || typeof value !== 'string') continue
    args.push(`--${name}`, value)
  }
  const spawned = fork(import.meta.filename, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] })
  const result = new Promise<unknown>((resolve, reject) => {
    spawned.once('message', resolve)
    spawned.once('exit', (code) => reject(new Error(`the ${role} process exited (${code}) before reporting`)))
  })
  return { process: spawned, result }
}

function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

async function runCoordinator(): Promise<void> {
  const progress = progressLine()
  let decisions: number[] = []
  const coordinator = await Coordinator.start({
    open: true,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    logger: createLogger('silent'),
    maxConnections: settings.nodes + 256,
    onDecisionTimed: (ms) => decisions.push(ms),
  })
  const address = coordinator.multiaddrs[0] as string
  const children: ChildProcess[] = []
  try {
    progress(`starting ${settings.nodes} simulated nodes (one libp2p host and identity each)…`)
    const registrationStarted = performance.now()
    const nodes = child('nodes', address)
    children.push(nodes.process)
    let nodesFailed: unknown
    // The nodes report once all have dialled; a failure (or exit) before that ends the benchmark.
    nodes.result.catch((error: unknown) => {
      nodesFailed = error
    })
    let shown = -1
    while (coordinator.registry.size < settings.nodes) {
      if (nodesFailed !== undefined) throw nodesFailed
      await new Promise((resolve) => setTimeout(resolve, 250))
      const registered = Math.floor(coordinator.registry.size / 50) * 50
      if (registered !== shown) progress(`registered ${coordinator.registry.size}/${settings.nodes} nodes`)
      shown = registered
    }
    const registrationSeconds = (performance.now() - registrationStarted) / 1000
    progress(`running clients for ${settings.seconds} s at ${settings.concurrency} concurrent requests…`)
    decisions = []
    // The coordinator's own CPU time over the load phase: on a shared machine the wall-clock rate depends on what
    // else runs, its CPU time per request much less.
    const cpuBefore = process.cpuUsage()
    const clients = child('clients', address)
    children.push(clients.process)
    const load = (await clients.result) as {
      completed: number
      failed: number
      errorCodes: Record<string, number>
      seconds: number
      latencyP50Ms: number
      latencyP99Ms: number
    }
    const cpu = process.cpuUsage(cpuBefore)
    const cpuMsPerRequest = (cpu.user + cpu.system) / 1000 / Math.max(1, load.completed)
    const sorted = Float64Array.from(decisions).sort()
    const decisionCount = sorted.length

    // The decision alone, on the same registry of real registrations, with the headers' candidates at random.
    progress('timing the decision alone…')
    const nodeIds = [...coordinator.registry.all()].map((node) => node.nodeId)
    const headers: RequestHeader[] = Array.from({ length: 1_024 }, () => ({
      model: 'lull-tiny',
      maxTokens: settings.tokens,
      sizeBucket: 1_024,
      candidates: Array.from({ length: 3 }, () => nodeIds[Math.floor(Math.random() * nodeIds.length)] as string),
      priority: 0,
    }))
    const loopStarted = performance.now()
    let placements = 0
    while (performance.now() - loopStarted < 2_000) {
      for (let index = 0; index < 1_000; index++) {
        placeRequest(coordinator.registry, headers[index % headers.length] as RequestHeader)
        placements++
      }
    }
    const placementsPerSecond = placements / ((performance.now() - loopStarted) / 1000)

    // The baseline: libp2p alone, same machine, same run. The Lull network is stopped first so that this process
    // does nothing else meanwhile.
    progress('measuring the transport floor (a bare libp2p echo, no Lull)…')
    for (const spawned of children.splice(0)) spawned.kill()
    await coordinator.stop()
    const floor = await transportFloor()
    // Messages through the coordinator per request: in, the submit, each chunk and the end; out, the dispatch, the
    // `dispatched` note, each chunk and the end.
    const chunks = Math.ceil(settings.tokens / TOKENS_PER_CHUNK)
    const messagesPerRequest = 2 * chunks + 5
    const floorMsPerRequest = ((floor.cpuUsPerMessage / 2) * messagesPerRequest) / 1000
    progress('')

    const requestsPerSecond = load.completed / load.seconds
    const result = {
      settings,
      registrationSeconds,
      endToEnd: {
        completed: load.completed,
        failed: load.failed,
        errorCodes: load.errorCodes,
        seconds: load.seconds,
        requestsPerSecond,
        latencyP50Ms: load.latencyP50Ms,
        latencyP99Ms: load.latencyP99Ms,
        coordinatorCpuMsPerRequest: cpuMsPerRequest,
        requestsPerSecondPerCoordinatorCore: 1000 / cpuMsPerRequest,
      },
      transportFloor: {
        messageBytes: ECHO_MESSAGE_BYTES,
        messagesEchoed: floor.messages,
        echoedPerSecond: floor.messages / floor.seconds,
        cpuUsPerMessageEchoed: floor.cpuUsPerMessage,
        messagesThroughCoordinatorPerRequest: messagesPerRequest,
        floorCpuMsPerRequest: floorMsPerRequest,
        coordinatorCpuOverFloor: cpuMsPerRequest / floorMsPerRequest,
      },
      decision: {
        samples: decisionCount,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: percentile(sorted, 100),
        alonePlacementsPerSecond: placementsPerSecond,
      },
      targets: {
        requestsPerSecond: TARGET_REQUESTS_PER_SECOND,
        decisionP99Ms: TARGET_DECISION_P99_MS,
        endToEndMet: requestsPerSecond >= TARGET_REQUESTS_PER_SECOND,
        decisionMet: percentile(sorted, 99) < TARGET_DECISION_P99_MS,
      },
    }
    const f = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a')
    printTable(`Scheduling with ${settings.nodes} registered nodes over libp2p (${settings.seconds} s of load)`, [
      { measure: 'end-to-end requests/s', value: f(requestsPerSecond), target: `>= ${TARGET_REQUESTS_PER_SECOND}` },
      {
        measure: 'coordinator CPU per request (ms)',
        value: f(cpuMsPerRequest, 3),
        target: `(${f(1000 / cpuMsPerRequest, 0)} requests/s per core)`,
      },
      {
        measure: 'libp2p alone: CPU per message echoed (µs)',
        value: f(floor.cpuUsPerMessage, 1),
        target: `(${f(floor.messages / floor.seconds, 0)} echoed/s)`,
      },
      {
        measure: `  × ${messagesPerRequest} messages per request ÷ 2 (ms)`,
        value: f(floorMsPerRequest, 3),
        target: `(floor: ${f(1000 / floorMsPerRequest, 0)} requests/s per core)`,
      },
      { measure: 'coordinator CPU per request ÷ floor', value: f(cpuMsPerRequest / floorMsPerRequest, 2), target: '' },
      { measure: 'requests completed / failed', value: `${load.completed} / ${load.failed}`, target: '' },
      {
        measure: 'request latency p50 / p99 (ms)',
        value: `${f(load.latencyP50Ms)} / ${f(load.latencyP99Ms)}`,
        target: '',
      },
      { measure: 'decision p50 (ms)', value: f(percentile(sorted, 50), 4), target: '' },
      { measure: 'decision p99 (ms)', value: f(percentile(sorted, 99), 4), target: `< ${TARGET_DECISION_P99_MS}` },
      { measure: 'decisions timed under load', value: decisionCount, target: '' },
      { measure: 'decision alone, placements/s', value: f(placementsPerSecond, 0), target: '' },
      { measure: 'time to register every node (s)', value: f(registrationSeconds), target: '' },
    ])
    const path = await writeResult('scheduling', result, values.out)
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
    process.stderr.write(`wrote ${path}\n`)
  } finally {
    for (const spawned of children) spawned.kill()
    await coordinator.stop()
  }
}

/**
 * A bare Lull host echoing what a child's clients send (transport-floor.ts), for half the load phase (at most 5 s):
 * this process's CPU time per message received and sent back.
 */
async function transportFloor(): Promise<EchoResult & { cpuUsPerMessage: number }> {
  const host = await createLullHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  try {
    await serveEcho(host)
    const address = host.getMultiaddrs()[0]?.toString() ?? ''
    const cpuBefore = process.cpuUsage()
    const echo = child('echo-clients', address, { seconds: String(Math.min(5, settings.seconds / 2)) })
    const result = (await echo.result) as EchoResult
    const cpu = process.cpuUsage(cpuBefore)
    return { ...result, cpuUsPerMessage: (cpu.user + cpu.system) / Math.max(1, result.messages) }
  } finally {
    await host.stop()
  }
}
