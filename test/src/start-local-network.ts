/**
 * `npm start`: a whole Lull network on 127.0.0.1. Starts a coordinator and two nodes as separate processes (the
 * same `lull-coordinator` and `lull-node` commands an operator runs), asks one question through the SDK and streams
 * the answer, prints the nodes, then keeps the network up until Ctrl-C. `--once` stops after the table.
 */
import '@lull/proto/polyfill'
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LullClient, type NodeInfo } from '@lull/client-sdk'
import Table from 'cli-table3'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** Where the local network keeps identities, generated models and logs. `LULL_STATE_DIR` overrides it. */
const STATE_DIR = resolve(process.env.LULL_STATE_DIR ?? join(ROOT, '.lull-local'))
const NODE_COUNT = 2
const SAMPLE_QUESTION = 'What does a quiet morning in the garden look like?'
const START_TIMEOUT_MS = 120_000

const once = process.argv.includes('--once')
const children: ChildProcess[] = []

function step(text: string): void {
  process.stdout.write(`\x1b[2m▸\x1b[0m ${text}\n`)
}

function launch(name: string, script: string, args: string[]): ChildProcess {
  const log = createWriteStream(join(STATE_DIR, 'logs', `${name}.log`))
  const child = spawn(process.execPath, [join(ROOT, script), ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr?.pipe(log)
  child.once('exit', (code, signal) => {
    if (!shuttingDown) {
      process.stderr.write(
        `\n${name} exited (${signal ?? code}); its log is ${relative(process.cwd(), join(STATE_DIR, 'logs', `${name}.log`))}\n`,
      )
      void shutdown(1)
    }
  })
  children.push(child)
  return child
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline)
      throw new Error(`${what} did not happen within ${START_TIMEOUT_MS / 1000} s; see the logs in ${STATE_DIR}/logs`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

let shuttingDown = false
async function shutdown(code: number): Promise<never> {
  shuttingDown = true
  for (const child of children) child.kill('SIGTERM')
  await Promise.all(
    children.map((child) =>
      child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined,
    ),
  )
  process.exit(code)
}

function nodeTable(nodes: NodeInfo[], modelId: string): string {
  const table = new Table({
    head: ['node', 'os/arch', 'cpu', 'cores', 'ram', 'gpu', 'model', 'slots', 'decode tok/s', 'prefill tok/s'],
    style: { head: ['cyan'] },
  })
  const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`
  for (const node of nodes) {
    table.push([
      `…${node.nodeId.slice(-8)}`,
      `${node.hardware.os}/${node.hardware.arch}`,
      node.hardware.cpuModel.length > 28 ? `${node.hardware.cpuModel.slice(0, 27)}…` : node.hardware.cpuModel,
      node.hardware.cpuCores,
      gib(node.hardware.ramTotalBytes),
      node.hardware.gpu,
      `${modelId} (${node.modelDigest.slice(0, 8)})`,
      `${node.busySlots}/${node.slots}`,
      Math.round(node.benchmark.decodeTokensPerSecond),
      Math.round(node.benchmark.prefillTokensPerSecond),
    ])
  }
  return table.toString()
}

async function main(): Promise<void> {
  process.once('SIGINT', () => void shutdown(0))
  process.once('SIGTERM', () => void shutdown(0))
  await mkdir(join(STATE_DIR, 'logs'), { recursive: true })
  const readyFile = join(STATE_DIR, 'coordinator.addr')
  await rm(readyFile, { force: true })

  step('starting the coordinator on 127.0.0.1')
  launch('coordinator', 'coordinator/dist/cli.js', [
    'start',
    '--open',
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--data-dir',
    join(STATE_DIR, 'coordinator'),
    '--ready-file',
    readyFile,
  ])
  const address = await waitFor(
    'the coordinator starting',
    async () => (await readFile(readyFile, 'utf8')).trim() || undefined,
  )
  step(`coordinator listening on ${address}`)

  step(`starting ${NODE_COUNT} nodes with lull-tiny (generated offline on first run, then loaded and benchmarked)`)
  for (let index = 1; index <= NODE_COUNT; index++) {
    launch(`node-${index}`, 'node/dist/bin.cjs', [
      'start',
      '--coordinator',
      address,
      '--model',
      'lull-tiny',
      '--slots',
      '4',
      // A local demo on the developer's own machine: serve regardless of the idle policy.
      '--when',
      'always',
      '--threads',
      '1',
      '--data-dir',
      join(STATE_DIR, `node-${index}`),
    ])
  }
  const client = await LullClient.connect({ coordinator: address })
  const models = await waitFor('both nodes registering', async () => {
    const listed = await client.models()
    const nodes = listed.find((model) => model.id === 'lull-tiny')?.nodes ?? []
    return nodes.length >= NODE_COUNT ? listed : undefined
  })
  step(`${NODE_COUNT} nodes registered; their certificates verified on this machine`)

  process.stdout.write(`\n\x1b[1mQ:\x1b[0m ${SAMPLE_QUESTION}\n\x1b[1mA:\x1b[0m `)
  for await (const event of client.chat({
    model: 'lull-tiny',
    messages: [{ role: 'user', content: SAMPLE_QUESTION }],
    maxTokens: 64,
  })) {
    if (event.type === 'text-delta') process.stdout.write(event.text)
    else {
      process.stdout.write(
        `\n\x1b[2m(${event.usage.outputTokens} tokens, ${event.finishReason}, sealed end to end; ran on node …${event.nodeId.slice(-8)})\x1b[0m\n\n`,
      )
    }
  }

  const model = models.find((entry) => entry.id === 'lull-tiny')
  process.stdout.write(`${nodeTable(model?.nodes ?? [], 'lull-tiny')}\n\n`)
  await client.close()

  if (once) await shutdown(0)
  process.stdout.write(
    [
      `The network is up. Coordinator: ${address}`,
      'Try, in another terminal:',
      `  npx lull ask --coordinator ${address} "Tell me about the sea"`,
      `  npx lull models --coordinator ${address}`,
      `Logs (ids and counts only, never prompts) are in ${relative(process.cwd(), join(STATE_DIR, 'logs'))}. Ctrl-C stops everything.`,
      '',
    ].join('\n'),
  )
}

main().catch(async (error: unknown) => {
  process.stderr.write(`\nnpm start failed: ${(error as Error).message}\n`)
  await shutdown(1)
})
