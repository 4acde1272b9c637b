/**
 * Benchmark (not a test): aggregate output tokens/s of N concurrent requests on one node's engine (parallel
 * sequences in one context) against the same requests run one at a time, in the same run on the same model.
 *
 *   npm run build && node test/dist/bench/batching.js [--concurrency 8 | 1,2,4,8,16] [--tokens 128] [--threads 1]
 *     [--rounds 3] [--json] [--out DIR]
 *
 * Prints a table (and, with --json, one JSON object on stdout) and writes bench-results/batching.json.
 * Target on lull-tiny at 8 concurrent requests: concurrent / sequential >= 2.5.
 */
import '@lull/proto/polyfill'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Engine, ensureLullTinyModel, type GenerateParams } from '@lull/node'
import { printTable, progressLine, writeResult } from './report.js'

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '128' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})
const levels = values.concurrency.split(',').map(Number)
if (levels.some((level) => !Number.isInteger(level) || level < 1)) {
  process.stderr.write('--concurrency takes whole numbers of at least 1, e.g. 8 or 1,2,4,8,16\n')
  process.exit(2)
}
const maxTokens = Number(values.tokens)
const threads = Number(values.threads)
const rounds = Number(values.rounds)
const TARGET_RATIO_AT_8 = 2.5

function requests(concurrency: number, round: number): GenerateParams[] {
  return Array.from({ length: concurrency }, (_, index) => ({
    messages: [{ role: 'user' as const, content: `Tell me about the garden, part ${index}` }],
    maxTokens,
    temperature: 0.8,
    seed: round * 1_000 + index,
  }))
}

async function timed(run: () => Promise<number>): Promise<{ tokens: number; seconds: number }> {
  const started = process.hrtime.bigint()
  const tokens = await run()
  return { tokens, seconds: Number(process.hrtime.bigint() - started) / 1e9 }
}

const dataDir = await mkdtemp(join(tmpdir(), 'lull-bench-'))
const progress = progressLine()
try {
  progress('generating lull-tiny…')
  const model = await ensureLullTinyModel(dataDir)
  progress('loading the engine…')
  const engine = await Engine.load({ modelPath: model.path, slots: Math.max(...levels), threads, gpu: false })
  const generate = async (params: GenerateParams) => (await engine.generate(params, () => {})).outputTokens
  await generate(requests(1, 99)[0] as GenerateParams) // warm-up

  const results = []
  for (const concurrency of levels) {
    let sequential = { tokens: 0, seconds: 0 }
    let concurrent = { tokens: 0, seconds: 0 }
    for (let round = 0; round < rounds; round++) {
      const runSequential = async () => {
        progress(`${concurrency} requests, round ${round + 1}/${rounds}: one at a time…`)
        const result = await timed(async () => {
          let tokens = 0
          for (const params of requests(concurrency, round)) tokens += await generate(params)
          return tokens
        })
        sequential = { tokens: sequential.tokens + result.tokens, seconds: sequential.seconds + result.seconds }
      }
      const runConcurrent = async () => {
        progress(`${concurrency} requests, round ${round + 1}/${rounds}: all at once…`)
        const result = await timed(async () =>
          (await Promise.all(requests(concurrency, round).map(generate))).reduce((a, b) => a + b, 0),
        )
        concurrent = { tokens: concurrent.tokens + result.tokens, seconds: concurrent.seconds + result.seconds }
      }
      // Alternate the order each round so drift in machine load does not favour one side.
      if (round % 2 === 0) {
        await runSequential()
        await runConcurrent()
      } else {
        await runConcurrent()
        await runSequential()
      }
    }
    const sequentialRate = sequential.tokens / sequential.seconds
    const concurrentRate = concurrent.tokens / concurrent.seconds
    results.push({
      concurrency,
      sequentialTokensPerSecond: Math.round(sequentialRate),
      concurrentTokensPerSecond: Math.round(concurrentRate),
      ratio: Number((concurrentRate / sequentialRate).toFixed(2)),
    })
  }
  await engine.dispose()
  progress('')

  const result = { model: 'lull-tiny', threads, maxTokens, rounds, results, targetRatioAt8: TARGET_RATIO_AT_8 }
  const path = await writeResult('batching', result, values.out)
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  else {
    printTable(
      `Batching on one engine: lull-tiny, ${threads} thread(s), requests of up to ${maxTokens} tokens, ${rounds} rounds`,
      results.map((row) => ({
        'concurrent requests': row.concurrency,
        'one at a time (tokens/s)': row.sequentialTokensPerSecond,
        'all at once (tokens/s)': row.concurrentTokensPerSecond,
        ratio: `${row.ratio}x${row.concurrency === 8 ? ` (target >= ${TARGET_RATIO_AT_8}x)` : ''}`,
      })),
    )
    process.stdout.write(`results: ${path}\n`)
  }
} finally {
  await rm(dataDir, { recursive: true, force: true })
}
