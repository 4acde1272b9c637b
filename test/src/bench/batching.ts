/**
 * Benchmark (not a test): aggregate output tokens/s of N concurrent requests on one node's engine (parallel
 * sequences in one context) against the same requests run one at a time, in the same run on the same model.
 * Concurrency is measured two ways over the same request list (N × --per-slot requests a round):
 *   - sustained: N requests in flight at all times, the next starting as soon as one ends (a node under load);
 *   - waves: N started together and all awaited before the next N (each wave drains to its longest answer).
 * Then the same token work without Lull or a chat driver: node-llama-cpp's own `LlamaContextSequence.evaluate` (public
 * API) on a context of N sequences, each request feeding back sampled tokens until end-of-sequence or --tokens (as the
 * engine's do), N started together and awaited before the next N, against one at a time. That is what this engine
 * library's batching gives this model on this machine; the gap to the engine's waves is what the engine's request
 * handling (the chat driver, streaming, Lull) costs.
 *
 *   npm run build && node test/dist/bench/batching.js [--concurrency 8 | 1,2,4,8,16] [--tokens 128] [--threads 1]
 *     [--rounds 3] [--per-slot 4] [--json] [--out DIR]
 *
 * Prints a table (and, with --json, one JSON object on stdout) and writes bench-results/batching.json.
 * Target on lull-tiny at 8 concurrent requests (sustained): concurrent / sequential >= 2.5.
 */
import '@lull/proto/polyfill'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Engine, ensureLullTinyModel, type GenerateParams } from '@lull/node'
import { threadPoolSizeFor } from '@lull/node/thread-pool'
import { getLlama, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp'
import { printTable, progressLine, writeResult } from './report.js'

// The engine runs with the thread pool lull-node gives itself (node/src/thread-pool.cts). libuv sizes the pool when
// it starts, which loading this module already did; so unless the environment sets the size, run again with it.
if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const env = { ...process.env, UV_THREADPOOL_SIZE: String(threadPoolSizeFor(availableParallelism())) }
  const again = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env })
  process.exit(again.status ?? 1)
}

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '128' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    'per-slot': { type: 'string', default: '4' },
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
const perSlot = Number(values['per-slot'])
if (!Number.isInteger(perSlot) || perSlot < 1) {
  process.stderr.write('--per-slot takes a whole number of at least 1 (requests per concurrent slot per round)\n')
  process.exit(2)
}
const TARGET_RATIO_AT_8 = 2.5

function requests(count: number, round: number): GenerateParams[] {
  return Array.from({ length: count }, (_, index) => ({
    messages: [{ role: 'user' as const, content: `Tell me about the garden, part ${index}` }],
    maxTokens,
    temperature: 0.8,
    seed: round * 1_000 + index,
  }))
}

interface BatchingRow {
  concurrency: number
  sequentialTokensPerSecond: number
  concurrentTokensPerSecond: number
  ratio: number
  wavesTokensPerSecond: number
  wavesRatio: number
  bareSequentialTokensPerSecond?: number
  bareConcurrentTokensPerSecond?: number
  bareRatio?: number
}

/** Tokens of history node-llama-cpp's chat driver penalises repeats over (its default), used alike here. */
const REPEAT_PENALTY_LAST_TOKENS = 64

/**
 * One request's token work on a bare sequence: the prompt, then sampled tokens fed back until end-of-sequence or
 * maxTokens.
 */
async function bareGenerate(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  params: GenerateParams,
): Promise<number> {
  const prompt: Token[] = [...(model.tokens.bos === null ? [] : [model.tokens.bos])]
  for (const message of params.messages) prompt.push(...model.tokenize(message.content))
  const generated: Token[] = []
  const evaluation = sequence.evaluate(prompt, {
    temperature: params.temperature,
    seed: params.seed,
    repeatPenalty: { punishTokens: () => generated.slice(-REPEAT_PENALTY_LAST_TOKENS) },
  })
  for await (const token of evaluation) {
    if (model.isEogToken(token)) break
    generated.push(token)
    if (generated.length >= maxTokens) break
  }
  await sequence.clearHistory()
  return generated.length
}

async function timed(run: () => Promise<number>): Promise<{ tokens: number; seconds: number }> {
  const started = process.hrtime.bigint()
  const tokens = await run()
  return { tokens, seconds: Number(process.hrtime.bigint() - started) / 1e9 }
}

const dataDir = await mkdtemp(join(tmpdir(), 'lull-bench-'))
const progress = progressLine()

/**
 * Runs every mode once per round, in an order rotated each round so drift in machine load favours none, and returns
 * each mode's tokens/s over all rounds. `modesFor(round)` gives the modes for that round's request list.
 */
async function ratesOf<Mode extends string>(
  label: string,
  modesFor: (round: number) => Record<Mode, () => Promise<number>>,
): Promise<Record<Mode, number>> {
  const totals = new Map<Mode, { tokens: number; seconds: number }>()
  for (let round = 0; round < rounds; round++) {
    const modes = modesFor(round)
    const names = Object.keys(modes) as Mode[]
    for (let step = 0; step < names.length; step++) {
      const name = names[(step + round) % names.length] as Mode
      progress(`${label}, round ${round + 1}/${rounds}: ${name}…`)
      const result = await timed(modes[name])
      const total = totals.get(name) ?? { tokens: 0, seconds: 0 }
      totals.set(name, { tokens: total.tokens + result.tokens, seconds: total.seconds + result.seconds })
    }
  }
  return Object.fromEntries([...totals].map(([name, total]) => [name, total.tokens / total.seconds])) as Record<
    Mode,
    number
  >
}

/** Runs the list one request after another; returns the tokens generated. */
async function oneAtATime(list: GenerateParams[], run: (params: GenerateParams) => Promise<number>): Promise<number> {
  let tokens = 0
  for (const params of list) tokens += await run(params)
  return tokens
}

/** Runs the list in waves of `size` started together, each awaited before the next; returns the tokens generated. */
async function inWaves(
  list: GenerateParams[],
  size: number,
  run: (params: GenerateParams, index: number) => Promise<number>,
): Promise<number> {
  let tokens = 0
  for (let start = 0; start < list.length; start += size) {
    const counts = await Promise.all(list.slice(start, start + size).map(run))
    tokens += counts.reduce((a, b) => a + b, 0)
  }
  return tokens
}

try {
  progress('generating lull-tiny…')
  const model = await ensureLullTinyModel(dataDir)
  progress('loading the engine…')
  const engine = await Engine.load({ modelPath: model.path, slots: Math.max(...levels), threads, gpu: false })
  const generate = async (params: GenerateParams) => (await engine.generate(params, () => {})).outputTokens
  await generate(requests(1, 99)[0] as GenerateParams) // warm-up

  const results: BatchingRow[] = []
  for (const concurrency of levels) {
    const rate = await ratesOf(`${concurrency} concurrent`, (round) => {
      const list = requests(concurrency * perSlot, round)
      return {
        sequential: () => oneAtATime(list, generate),
        sustained: async () => {
          let next = 0
          const workers = Array.from({ length: concurrency }, async () => {
            let tokens = 0
            while (next < list.length) tokens += await generate(list[next++] as GenerateParams)
            return tokens
          })
          return (await Promise.all(workers)).reduce((a, b) => a + b, 0)
        },
        waves: () => inWaves(list, concurrency, generate),
      }
    })
    results.push({
      concurrency,
      sequentialTokensPerSecond: Math.round(rate.sequential),
      concurrentTokensPerSecond: Math.round(rate.sustained),
      ratio: Number((rate.sustained / rate.sequential).toFixed(2)),
      wavesTokensPerSecond: Math.round(rate.waves),
      wavesRatio: Number((rate.waves / rate.sequential).toFixed(2)),
    })
  }
  await engine.dispose()

  progress('node-llama-cpp alone: loading…')
  const llama = await getLlama({ gpu: false, build: 'never', maxThreads: threads })
  try {
    const bareModel = await llama.loadModel({ modelPath: model.path })
    const bareContext = await bareModel.createContext({ sequences: Math.max(...levels), threads })
    const sequences = Array.from({ length: Math.max(...levels) }, () => bareContext.getSequence())
    const bare = (params: GenerateParams, index: number) =>
      bareGenerate(bareModel, sequences[index] as LlamaContextSequence, params)
    await bare(requests(1, 99)[0] as GenerateParams, 0) // warm-up
    for (const row of results) {
      const rate = await ratesOf(`node-llama-cpp alone, ${row.concurrency} sequences`, (round) => {
        const list = requests(row.concurrency * perSlot, round)
        return {
          sequential: () => oneAtATime(list, (params) => bare(params, 0)),
          waves: () => inWaves(list, row.concurrency, bare),
        }
      })
      row.bareSequentialTokensPerSecond = Math.round(rate.sequential)
      row.bareConcurrentTokensPerSecond = Math.round(rate.waves)
      row.bareRatio = Number((rate.waves / rate.sequential).toFixed(2))
    }
  } finally {
    await llama.dispose()
  }
  progress('')

  const result = {
    model: 'lull-tiny',
    threads,
    threadPool: Number(process.env.UV_THREADPOOL_SIZE),
    maxTokens,
    rounds,
    perSlot,
    results,
    targetRatioAt8: TARGET_RATIO_AT_8,
  }
  const path = await writeResult('batching', result, values.out)
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  else {
    printTable(
      `Batching on one engine: lull-tiny, ${threads} thread(s), requests of up to ${maxTokens} tokens, ` +
        `${rounds} rounds of ${perSlot} requests per concurrent slot`,
      results.map((row) => ({
        'concurrent requests': row.concurrency,
        'one at a time (tokens/s)': row.sequentialTokensPerSecond,
        'sustained (tokens/s)': row.concurrentTokensPerSecond,
        ratio: `${row.ratio}x${row.concurrency === 8 ? ` (target >= ${TARGET_RATIO_AT_8}x)` : ''}`,
        'in waves (tokens/s)': row.wavesTokensPerSecond,
        'waves ratio': `${row.wavesRatio}x`,
        'node-llama-cpp alone': `${row.bareRatio}x`,
      })),
    )
    process.stdout.write(
      'node-llama-cpp alone: the same requests on bare sequences (no chat driver, no Lull), in waves of N vs one at ' +
        'a time (tokens/s: ' +
        `${results.map((row) => `${row.bareConcurrentTokensPerSecond} vs ${row.bareSequentialTokensPerSecond}`).join(', ')}).\n`,
    )
    process.stdout.write(`results: ${path}\n`)
  }
} finally {
  await rm(dataDir, { recursive: true, force: true })
}
