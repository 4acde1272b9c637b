/**
 * Benchmark (not a test): how the coordinator's cost grows with the number of nodes and of concurrent streams.
 * Runs the scheduling benchmark (simulated nodes over real libp2p, scheduling.ts) for each combination and puts the
 * figures side by side: requests/s, request latency p50/p99, coordinator CPU per request, decision p50/p99.
 *
 *   npm run build && node test/dist/bench/scale.js [--nodes 1,4,16,64] [--concurrency 8,64] [--seconds 8] [--out DIR]
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { printTable, progressLine, writeResult } from './report.js'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1,4,16,64' },
    concurrency: { type: 'string', default: '8,64' },
    seconds: { type: 'string', default: '8' },
    out: { type: 'string' },
  },
})
const list = (text: string) => text.split(',').map(Number)
const progress = progressLine()

interface SchedulingResult {
  endToEnd: {
    requestsPerSecond: number
    latencyP50Ms: number
    latencyP99Ms: number
    coordinatorCpuMsPerRequest: number
    completed: number
    failed: number
  }
  decision: { p50Ms: number; p99Ms: number }
}

const scratch = await mkdtemp(join(tmpdir(), 'lull-bench-scale-'))
try {
  const runs = []
  for (const nodes of list(values.nodes)) {
    for (const concurrency of list(values.concurrency)) {
      progress(`${nodes} node(s), ${concurrency} concurrent stream(s)…`)
      const out = join(scratch, `${nodes}-${concurrency}`)
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(
          process.execPath,
          [
            join(import.meta.dirname, 'scheduling.js'),
            '--nodes',
            String(nodes),
            '--concurrency',
            String(concurrency),
            '--seconds',
            values.seconds,
            '--out',
            out,
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        )
        child.once('exit', resolve)
      })
      if (code !== 0) throw new Error(`the scheduling benchmark failed for ${nodes} nodes, ${concurrency} streams`)
      const result = JSON.parse(await readFile(join(out, 'scheduling.json'), 'utf8')) as SchedulingResult
      runs.push({ nodes, concurrency, endToEnd: result.endToEnd, decision: result.decision })
    }
  }
  progress('')
  const f = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a')
  printTable(
    `Scale: simulated nodes over real libp2p, ${values.seconds} s of load per row`,
    runs.map((run) => ({
      nodes: run.nodes,
      'concurrent streams': run.concurrency,
      'requests/s': f(run.endToEnd.requestsPerSecond),
      'latency p50 / p99 ms': `${f(run.endToEnd.latencyP50Ms)} / ${f(run.endToEnd.latencyP99Ms)}`,
      'coordinator CPU ms/request': f(run.endToEnd.coordinatorCpuMsPerRequest, 2),
      'decision p50 / p99 ms': `${f(run.decision.p50Ms, 3)} / ${f(run.decision.p99Ms, 3)}`,
      'completed / failed': `${run.endToEnd.completed} / ${run.endToEnd.failed}`,
    })),
  )
  process.stdout.write(
    `results: ${await writeResult('scale', { seconds: Number(values.seconds), runs }, values.out)}\n`,
  )
} finally {
  await rm(scratch, { recursive: true, force: true })
}
