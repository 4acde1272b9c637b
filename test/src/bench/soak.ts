/**
 * Soak (not part of the default test run): a network of real processes on 127.0.0.1 under steady load for a set
 * time, sampling every process's resident memory; prints RSS over time and writes bench-results/soak.json. A leak
 * shows as RSS that keeps climbing after the first minutes instead of levelling off.
 *
 *   npm run soak -- [--minutes 10] [--nodes 2] [--concurrency 4] [--sample-seconds 30] [--out DIR]
 */
import '@lull/proto/polyfill'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LullClient } from '@lull/client-sdk'
import { LullError } from '@lull/proto'
import { startProcessNetwork } from '../process-network.js'
import { printTable, progressLine, writeResult } from './report.js'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '4' },
    'sample-seconds': { type: 'string', default: '30' },
    out: { type: 'string' },
  },
})
const durationMs = Number(values.minutes) * 60_000
const nodeCount = Number(values.nodes)
const concurrency = Number(values.concurrency)
const sampleMs = Number(values['sample-seconds']) * 1_000
const progress = progressLine()
const mib = (bytes: number | undefined) => (bytes === undefined ? '-' : (bytes / 2 ** 20).toFixed(1))

const stateDir = await mkdtemp(join(tmpdir(), 'lull-soak-'))
try {
  progress(`starting a coordinator and ${nodeCount} node(s)…`)
  const network = await startProcessNetwork({ stateDir, nodes: nodeCount, slots: Math.max(2, concurrency) })
  const client = await LullClient.connect({ coordinator: network.address })
  const startedAt = Date.now()
  const endsAt = startedAt + durationMs
  let completed = 0
  let failed = 0
  const failures = new Map<string, number>()
  const worker = async (index: number): Promise<void> => {
    for (let request = 0; Date.now() < endsAt; request++) {
      try {
        await client
          .chat({
            model: 'lull-tiny',
            messages: [{ role: 'user', content: `Soak request ${index}-${request}: tell me about the harbour.` }],
            maxTokens: 64,
          })
          .text()
        completed++
      } catch (error) {
        failed++
        const key = error instanceof LullError ? `${error.name}/${error.code}` : String(error)
        failures.set(key, (failures.get(key) ?? 0) + 1)
      }
    }
  }
  const processes = [network.coordinator, ...network.nodes]
  const samples: Array<Record<string, number | undefined>> = []
  const sample = async (): Promise<void> => {
    const row: Record<string, number | undefined> = { minute: Number(((Date.now() - startedAt) / 60_000).toFixed(1)) }
    for (const process of processes) row[process.name] = await process.rssBytes()
    row.completed = completed
    row.failed = failed
    samples.push(row)
    progress(`minute ${row.minute}: ${completed} completed, ${failed} failed, coordinator ${mib(row.coordinator)} MiB`)
  }
  await sample()
  const sampler = setInterval(() => void sample(), sampleMs)
  await Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)))
  clearInterval(sampler)
  await sample()
  progress('')
  await client.close()
  await network.stop()

  printTable(
    `Soak: ${values.minutes} min, ${nodeCount} node(s), ${concurrency} concurrent streams; resident memory in MiB`,
    samples.map((row) => ({
      minute: row.minute ?? 0,
      ...Object.fromEntries(processes.map((process) => [process.name, mib(row[process.name])])),
      completed: row.completed ?? 0,
      failed: row.failed ?? 0,
    })),
  )
  const path = await writeResult(
    'soak',
    {
      minutes: Number(values.minutes),
      nodes: nodeCount,
      concurrency,
      completed,
      failed,
      failures: Object.fromEntries(failures),
      samples,
    },
    values.out,
  )
  process.stdout.write(`${completed} requests completed, ${failed} failed; results: ${path}\n`)
} finally {
  await rm(stateDir, { recursive: true, force: true })
}
