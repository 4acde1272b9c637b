/**
 * Benchmark (not a test): what Lull costs on top of the engine. One stream at a time, the same prompts, seeds and
 * model, alternating in one run between
 *   - direct: node-llama-cpp called in this process (one sequence, 2048-token context, one thread), and
 *   - Lull: the SDK here → a `lull-coordinator` process → a `lull-node` process (one slot, one thread), sealed
 *     end to end, over libp2p on 127.0.0.1.
 * Reports single-stream tokens/s (target Lull/direct >= 0.95) and time to first token (target: added p50 <= 10 ms).
 *
 *   npm run build && node test/dist/bench/overhead.js [--requests 12] [--tokens 200] [--out DIR]
 */
import '@lull/proto/polyfill'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LullClient } from '@lull/client-sdk'
import { ensureLullTinyModel } from '@lull/node'
import { getLlama, LlamaChat } from 'node-llama-cpp'
import { startProcessNetwork } from '../process-network.js'
import { percentile, printTable, progressLine, writeResult } from './report.js'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '12' },
    tokens: { type: 'string', default: '200' },
    out: { type: 'string' },
  },
})
const requestCount = Number(values.requests)
const maxTokens = Number(values.tokens)
const progress = progressLine()

interface Sample {
  ttftMs: number
  totalMs: number
  outputTokens: number
  text: string
}

const prompts = Array.from({ length: requestCount }, (_, index) => ({
  content: `Tell me about the garden in the morning, part ${index}.`,
  seed: 100 + index,
}))

const stateDir = await mkdtemp(join(tmpdir(), 'lull-bench-overhead-'))
try {
  progress('starting a coordinator and a node (separate processes)…')
  const network = await startProcessNetwork({ stateDir, nodes: 1, slots: 1, threads: 1 })
  const modelPath = (await ensureLullTinyModel(network.nodes[0]!.dataDir)).path

  const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1 })
  const model = await llama.loadModel({ modelPath })
  const context = await model.createContext({ contextSize: 2048, sequences: 1, threads: 1 })
  const chat = new LlamaChat({ contextSequence: context.getSequence(), chatWrapper: 'auto' })
  const direct = async (prompt: { content: string; seed: number }): Promise<Sample> => {
    const started = performance.now()
    let firstMs: number | undefined
    let text = ''
    const meterBefore = chat.sequence.tokenMeter.getState()
    await chat.generateResponse(
      [
        { type: 'user', text: prompt.content },
        { type: 'model', response: [] },
      ],
      {
        maxTokens,
        temperature: 0.8,
        seed: prompt.seed,
        onTextChunk: (chunk) => {
          firstMs ??= performance.now()
          text += chunk
        },
      },
    )
    const totalMs = performance.now() - started
    const outputTokens = chat.sequence.tokenMeter.diff(meterBefore).usedOutputTokens
    await chat.sequence.clearHistory()
    return { ttftMs: (firstMs ?? performance.now()) - started, totalMs, outputTokens, text }
  }

  const client = await LullClient.connect({ coordinator: network.address })
  const viaLull = async (prompt: { content: string; seed: number }): Promise<Sample> => {
    const started = performance.now()
    let firstMs: number | undefined
    let text = ''
    let outputTokens = 0
    for await (const event of client.chat({
      model: 'lull-tiny',
      messages: [{ role: 'user', content: prompt.content }],
      maxTokens,
      temperature: 0.8,
      seed: prompt.seed,
    })) {
      if (event.type === 'text-delta') {
        firstMs ??= performance.now()
        text += event.text
      } else if (event.type === 'finish') outputTokens = event.usage.outputTokens
    }
    const totalMs = performance.now() - started
    return { ttftMs: (firstMs ?? performance.now()) - started, totalMs, outputTokens, text }
  }

  // Warm both paths (model pages, catalogue, connections) before measuring.
  await direct({ content: 'warm up', seed: 1 })
  await viaLull({ content: 'warm up', seed: 1 })

  const directSamples: Sample[] = []
  const lullSamples: Sample[] = []
  let mismatches = 0
  // What relaying costs outside the node: the coordinator's CPU over the run (it serves nothing else), and this
  // process's CPU while it runs the SDK's side of each request.
  const coordinatorCpuBefore = await network.coordinator.cpuMs()
  let clientCpuMs = 0
  const viaLullMetered = async (prompt: { content: string; seed: number }): Promise<Sample> => {
    const before = process.cpuUsage()
    try {
      return await viaLull(prompt)
    } finally {
      const used = process.cpuUsage(before)
      clientCpuMs += (used.user + used.system) / 1_000
    }
  }
  for (const [index, prompt] of prompts.entries()) {
    progress(`request ${index + 1}/${requestCount}`)
    // Alternate which side goes first so drift in machine load does not favour one.
    const first = index % 2 === 0 ? direct : viaLullMetered
    const second = index % 2 === 0 ? viaLullMetered : direct
    const a = await first(prompt)
    const b = await second(prompt)
    const [d, l] = index % 2 === 0 ? [a, b] : [b, a]
    directSamples.push(d)
    lullSamples.push(l)
    if (d.text !== l.text) mismatches++
  }
  progress('')
  const coordinatorCpuAfter = await network.coordinator.cpuMs()
  const coordinatorCpuMs =
    coordinatorCpuBefore === undefined || coordinatorCpuAfter === undefined
      ? undefined
      : coordinatorCpuAfter - coordinatorCpuBefore
  await client.close()
  await llama.dispose()
  await network.stop()

  const summarize = (samples: Sample[]) => {
    const tokens = samples.reduce((sum, sample) => sum + sample.outputTokens, 0)
    const seconds = samples.reduce((sum, sample) => sum + sample.totalMs, 0) / 1_000
    const decodeSeconds = samples.reduce((sum, sample) => sum + sample.totalMs - sample.ttftMs, 0) / 1_000
    return {
      tokensPerSecond: tokens / seconds,
      decodeTokensPerSecond: tokens / decodeSeconds,
      ttftP50Ms: percentile(
        samples.map((sample) => sample.ttftMs),
        50,
      )!,
      ttftP95Ms: percentile(
        samples.map((sample) => sample.ttftMs),
        95,
      )!,
      outputTokens: tokens,
    }
  }
  const d = summarize(directSamples)
  const l = summarize(lullSamples)
  const result = {
    model: 'lull-tiny',
    requests: requestCount,
    maxTokens,
    direct: d,
    lull: l,
    tokensPerSecondRatio: Number((l.tokensPerSecond / d.tokensPerSecond).toFixed(3)),
    /** The same after the first token: the streaming rate alone, without the time to first token. */
    decodeTokensPerSecondRatio: Number((l.decodeTokensPerSecond / d.decodeTokensPerSecond).toFixed(3)),
    addedTtftP50Ms: Number((l.ttftP50Ms - d.ttftP50Ms).toFixed(2)),
    /** CPU outside the node per request: the coordinator (Linux only) and the SDK in this process. */
    cpuPerRequestMs: {
      coordinator: coordinatorCpuMs === undefined ? null : Number((coordinatorCpuMs / requestCount).toFixed(1)),
      client: Number((clientCpuMs / requestCount).toFixed(1)),
    },
    textMismatches: mismatches,
    targets: { tokensPerSecondRatio: 0.95, addedTtftP50Ms: 10 },
  }
  const fixed = (value: number, digits = 1) => value.toFixed(digits)
  printTable(`Overhead: one stream at a time, lull-tiny, ${requestCount} requests of up to ${maxTokens} tokens`, [
    {
      path: 'node-llama-cpp directly',
      'tokens/s': fixed(d.tokensPerSecond, 0),
      'decode tokens/s': fixed(d.decodeTokensPerSecond, 0),
      'TTFT p50 ms': fixed(d.ttftP50Ms),
      'TTFT p95 ms': fixed(d.ttftP95Ms),
    },
    {
      path: 'Lull (SDK → coordinator → node)',
      'tokens/s': fixed(l.tokensPerSecond, 0),
      'decode tokens/s': fixed(l.decodeTokensPerSecond, 0),
      'TTFT p50 ms': fixed(l.ttftP50Ms),
      'TTFT p95 ms': fixed(l.ttftP95Ms),
    },
  ])
  process.stdout.write(
    [
      `tokens/s ratio Lull/direct: ${result.tokensPerSecondRatio} (target >= 0.95)`,
      `  after the first token only: ${result.decodeTokensPerSecondRatio}`,
      `added time to first token, p50: ${result.addedTtftP50Ms} ms (target <= 10 ms)`,
      `CPU per request outside the node: coordinator ${result.cpuPerRequestMs.coordinator ?? 'n/a'} ms, client ${result.cpuPerRequestMs.client} ms`,
      `answers that differed between the two paths (same seed): ${mismatches} of ${requestCount}`,
      `results: ${await writeResult('overhead', result, values.out)}`,
      '',
    ].join('\n'),
  )
} finally {
  await rm(stateDir, { recursive: true, force: true })
}
