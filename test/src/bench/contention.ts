/**
 * Machine probe (not a Lull benchmark): how much work in another process slows the engine on this machine. Every
 * Lull figure that crosses processes depends on it: relaying an answer costs the coordinator and the client CPU
 * while the node's engine decodes. On a machine whose cores are independent the ratio stays near 1.0 as long as the
 * neighbour's load fits on the cores the engine leaves free.
 *
 *   npm run build && node test/dist/bench/contention.js [--load 10,25,50] [--period 20] [--requests 20] [--json]
 *     [--out DIR]
 *
 * One engine (lull-tiny, one sequence, one thread) generates up to 200 tokens per request, one request at a time,
 * alternately alone and while a neighbour process keeps itself busy for load % of every --period ms. Prints the
 * decode rate both ways and their ratio, per load, and writes bench-results/contention.json.
 */
import '@lull/proto/polyfill'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Engine, ensureLullTinyModel } from '@lull/node'
import { printTable, progressLine, writeResult } from './report.js'

const { values } = parseArgs({
  options: {
    load: { type: 'string', default: '10,25,50' },
    period: { type: 'string', default: '20' },
    requests: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})
const loads = values.load.split(',').map(Number)
const periodMs = Number(values.period)
const requestCount = Number(values.requests)
if (loads.some((load) => !(load > 0 && load <= 100)) || !(periodMs > 0) || !(requestCount >= 2)) {
  process.stderr.write('--load takes percentages of one core (e.g. 10,25,50), --period ms > 0, --requests >= 2\n')
  process.exit(2)
}

/** The neighbour: busy for the fraction of each period it is told over IPC (0 = idle). */
const NEIGHBOUR = `
let busyMs = 0
process.on('message', (message) => { busyMs = message.busyMs; process.send({ ready: true }) })
setInterval(() => { const until = performance.now() + busyMs; while (performance.now() < until); }, ${periodMs})
`

function startNeighbour(): ChildProcess {
  return spawn(process.execPath, ['-e', NEIGHBOUR], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

async function setNeighbourLoad(neighbour: ChildProcess, busyMs: number): Promise<void> {
  const ready = new Promise<void>((resolve) => neighbour.once('message', () => resolve()))
  neighbour.send({ busyMs })
  await ready
  await new Promise((resolve) => setTimeout(resolve, 2 * periodMs))
}

const dataDir = await mkdtemp(join(tmpdir(), 'lull-bench-contention-'))
const progress = progressLine()
const neighbour = startNeighbour()
try {
  progress('generating lull-tiny…')
  const model = await ensureLullTinyModel(dataDir)
  const engine = await Engine.load({ modelPath: model.path, slots: 1, threads: 1, gpu: false })
  /** Decode time and tokens after the first, for one request. */
  const decode = async (seed: number): Promise<{ tokens: number; ms: number }> => {
    const stamps: number[] = []
    await engine.generate(
      {
        messages: [{ role: 'user', content: `Tell me about the garden in the morning, part ${seed}.` }],
        maxTokens: 200,
        temperature: 0.8,
        seed,
      },
      () => stamps.push(performance.now()),
    )
    return { tokens: Math.max(0, stamps.length - 1), ms: (stamps.at(-1) ?? 0) - (stamps[0] ?? 0) }
  }
  await decode(1) // warm-up

  const results = []
  for (const load of loads) {
    const busyMs = (periodMs * load) / 100
    const totals = { alone: { tokens: 0, ms: 0 }, neighboured: { tokens: 0, ms: 0 } }
    for (let index = 0; index < requestCount; index++) {
      progress(`neighbour at ${load} % of a core: request ${index + 1}/${requestCount}`)
      // Alternate, with the same seed on both sides, so drift in machine speed does not favour either.
      for (const side of index % 2 === 0 ? (['alone', 'neighboured'] as const) : (['neighboured', 'alone'] as const)) {
        await setNeighbourLoad(neighbour, side === 'alone' ? 0 : busyMs)
        const sample = await decode(100 + index)
        totals[side] = { tokens: totals[side].tokens + sample.tokens, ms: totals[side].ms + sample.ms }
      }
    }
    const alone = (totals.alone.tokens / totals.alone.ms) * 1000
    const neighboured = (totals.neighboured.tokens / totals.neighboured.ms) * 1000
    results.push({
      loadPercent: load,
      aloneTokensPerSecond: Math.round(alone),
      neighbouredTokensPerSecond: Math.round(neighboured),
      ratio: Number((neighboured / alone).toFixed(3)),
    })
  }
  await engine.dispose()
  progress('')

  const result = { model: 'lull-tiny', periodMs, requests: requestCount, results }
  const path = await writeResult('contention', result, values.out)
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  else {
    printTable(
      `Engine decode rate with a busy neighbour process (lull-tiny, 1 thread, ${requestCount} requests each way per load)`,
      results.map((row) => ({
        'neighbour load (% of a core)': row.loadPercent,
        'alone (tokens/s)': row.aloneTokensPerSecond,
        'with neighbour (tokens/s)': row.neighbouredTokensPerSecond,
        ratio: row.ratio,
      })),
    )
    process.stdout.write(`results: ${path}\n`)
  }
} finally {
  neighbour.kill()
  await rm(dataDir, { recursive: true, force: true })
}
