/**
 * Benchmark (not a test): aggregate output tokens/s of N concurrent requests on one node's engine (parallel
 * sequences in one context) against the same requests run one at a time, in the same run on the same model.
 *
 *   npm run build && node test/dist/bench/batching.js [--concurrency 8] [--tokens 128] [--threads 1] [--json]
 *
 * Prints a table and, with --json, one JSON object. Target on lull-tiny: concurrent / sequential >= 2.5.
 */
import '@lull/proto/polyfill'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Engine, ensureLullTinyModel, type GenerateParams } from '@lull/node'

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '128' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
})
const concurrency = Number(values.concurrency)
const maxTokens = Number(values.tokens)
const threads = Number(values.threads)
const rounds = Number(values.rounds)

function requests(round: number): GenerateParams[] {
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
const progress = (text: string) => process.stderr.write(`\r${text.padEnd(60)}`)
try {
  progress('generating lull-tiny…')
  const model = await ensureLullTinyModel(dataDir)
  progress('loading the engine…')
  const engine = await Engine.load({ modelPath: model.path, slots: concurrency, threads, gpu: false })
  const generate = async (params: GenerateParams) => (await engine.generate(params, () => {})).outputTokens
  await generate(requests(99)[0] as GenerateParams) // warm-up

  let sequential = { tokens: 0, seconds: 0 }
  let concurrent = { tokens: 0, seconds: 0 }
  for (let round = 0; round < rounds; round++) {
    // Alternate the order each round so drift in machine load does not favour one side.
    const runSequential = async () => {
      progress(`round ${round + 1}/${rounds}: one at a time…`)
      const result = await timed(async () => {
        let tokens = 0
        for (const params of requests(round)) tokens += await generate(params)
        return tokens
      })
      sequential = { tokens: sequential.tokens + result.tokens, seconds: sequential.seconds + result.seconds }
    }
    const runConcurrent = async () => {
      progress(`round ${round + 1}/${rounds}: ${concurrency} at once…`)
      const result = await timed(async () =>
        (await Promise.all(requests(round).map(generate))).reduce((a, b) => a + b, 0),
      )
      concurrent = { tokens: concurrent.tokens + result.tokens, seconds: concurrent.seconds + result.seconds }
    }
    if (round % 2 === 0) {
      await runSequential()
      await runConcurrent()
    } else {
      await runConcurrent()
      await runSequential()
    }
  }
  await engine.dispose()
  progress('')
  process.stderr.write('\r')

  const sequentialRate = sequential.tokens / sequential.seconds
  const concurrentRate = concurrent.tokens / concurrent.seconds
  const result = {
    model: 'lull-tiny',
    threads,
    concurrency,
    maxTokens,
    rounds,
    sequentialTokensPerSecond: Math.round(sequentialRate),
    concurrentTokensPerSecond: Math.round(concurrentRate),
    ratio: Number((concurrentRate / sequentialRate).toFixed(2)),
    target: 2.5,
  }
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  else {
    process.stdout.write(
      [
        `lull-tiny, ${threads} thread(s), ${concurrency} requests of up to ${maxTokens} tokens, ${rounds} rounds`,
        `  one at a time   ${result.sequentialTokensPerSecond} tokens/s`,
        `  ${concurrency} at once      ${result.concurrentTokensPerSecond} tokens/s`,
        `  ratio           ${result.ratio}x (target >= ${result.target}x)`,
        '',
      ].join('\n'),
    )
  }
} finally {
  await rm(dataDir, { recursive: true, force: true })
}
