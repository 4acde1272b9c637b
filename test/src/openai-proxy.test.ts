import { spawn } from 'node:child_process'
import { join, resolve } from 'node:path'
import {
  ChatStream,
  createProxyServer,
  ErrorCode,
  type LullClient,
  type ProxyClient,
  type ProxyServer,
  RemoteError,
} from '@lull/client-sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const MESSAGES = [{ role: 'user' as const, content: 'Tell me about the little garden behind the old house.' }]

describe('the OpenAI-compatible proxy on a real network', () => {
  let network: TestNetwork
  let client: LullClient
  let proxy: ProxyServer
  let openai: OpenAI

  beforeAll(async () => {
    network = await startTestNetwork({ nodes: 1, slots: 2 })
    client = await network.client()
    await network.waitForNodes(client, 1)
    proxy = await createProxyServer({ client, port: 0 })
    openai = new OpenAI({ baseURL: proxy.baseUrl, apiKey: 'unused', maxRetries: 0 })
  })

  afterAll(async () => {
    await proxy?.close()
    await network?.stop()
  })

  it('lists the served models', async () => {
    const models = await openai.models.list()
    expect(models.data.map((model) => model.id)).toEqual(['lull-tiny'])
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: 'lull' })
    expect((await openai.models.retrieve('lull-tiny')).id).toBe('lull-tiny')
  })

  it('answers a chat completion with the text the same seed gives through LullClient', async () => {
    const expected = await client
      .chat({ model: 'lull-tiny', messages: MESSAGES, temperature: 0.8, seed: 42, maxTokens: 32 })
      .final()
    const completion = await openai.chat.completions.create({
      model: 'lull-tiny',
      messages: MESSAGES,
      temperature: 0.8,
      seed: 42,
      max_completion_tokens: 32,
    })
    expect(expected.text.length).toBeGreaterThan(0)
    expect(completion.object).toBe('chat.completion')
    expect(completion.choices).toHaveLength(1)
    expect(completion.choices[0]?.message).toMatchObject({ role: 'assistant', content: expected.text })
    expect(completion.choices[0]?.finish_reason).toBe(expected.finishReason)
    expect(completion.usage).toEqual({
      prompt_tokens: expected.usage.promptTokens,
      completion_tokens: expected.usage.outputTokens,
      total_tokens: expected.usage.promptTokens + expected.usage.outputTokens,
    })
  })

  it('streams a chat completion as server-sent chunks with usage at the end', async () => {
    const expected = await client
      .chat({ model: 'lull-tiny', messages: MESSAGES, temperature: 0.8, seed: 7, maxTokens: 40 })
      .final()
    const stream = await openai.chat.completions.create({
      model: 'lull-tiny',
      messages: MESSAGES,
      temperature: 0.8,
      seed: 7,
      max_tokens: 40,
      stream: true,
      stream_options: { include_usage: true },
    })
    const deltas: string[] = []
    const finishReasons: string[] = []
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk')
      const choice = chunk.choices[0]
      if (choice?.delta.content) deltas.push(choice.delta.content)
      if (choice?.finish_reason) finishReasons.push(choice.finish_reason)
      if (chunk.usage) usage = chunk.usage
    }
    expect(deltas.length).toBeGreaterThan(1)
    expect(deltas.join('')).toBe(expected.text)
    expect(finishReasons).toEqual([expected.finishReason])
    expect(usage?.completion_tokens).toBe(expected.usage.outputTokens)
  })

  it('serves /v1/completions, the prompt sent as a single user message', async () => {
    const prompt = 'Once upon a time'
    const expected = await client
      .complete({ model: 'lull-tiny', prompt, temperature: 0.5, seed: 3, maxTokens: 24 })
      .final()
    const completion = await openai.completions.create({
      model: 'lull-tiny',
      prompt,
      temperature: 0.5,
      seed: 3,
      max_tokens: 24,
    })
    expect(completion.object).toBe('text_completion')
    expect(completion.choices[0]?.text).toBe(expected.text)
    expect(completion.usage?.completion_tokens).toBe(expected.usage.outputTokens)

    const stream = await openai.completions.create({
      model: 'lull-tiny',
      prompt,
      temperature: 0.5,
      seed: 3,
      max_tokens: 24,
      stream: true,
    })
    let streamed = ''
    for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? ''
    expect(streamed).toBe(expected.text)
  })

  it('refuses an unknown model with a 404 that openai raises as NotFoundError', async () => {
    const request = openai.chat.completions.create({ model: 'no-such-model', messages: MESSAGES })
    await expect(request).rejects.toBeInstanceOf(OpenAI.NotFoundError)
    await expect(request).rejects.toMatchObject({ status: 404, code: 'model_not_found', param: 'model' })
    const streamed = openai.chat.completions.create({ model: 'no-such-model', messages: MESSAGES, stream: true })
    await expect(streamed).rejects.toBeInstanceOf(OpenAI.NotFoundError)
  })

  it('refuses n > 1 and malformed parameters with a 400 naming the parameter', async () => {
    await expect(
      openai.chat.completions.create({ model: 'lull-tiny', messages: MESSAGES, n: 2 }),
    ).rejects.toMatchObject({ status: 400, param: 'n', type: 'invalid_request_error' })
    await expect(
      openai.chat.completions.create({ model: 'lull-tiny', messages: MESSAGES, temperature: 5 }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError)
    await expect(
      openai.chat.completions.create({
        model: 'lull-tiny',
        messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }],
      }),
    ).rejects.toMatchObject({ status: 400, param: 'messages[0].role' })
  })

  it('checks the body at the boundary: invalid JSON is a 400, an oversized body a 413, an unknown URL a 404', async () => {
    const post = (body: string) =>
      fetch(`${proxy.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      })
    const invalid = await post('{"model": ')
    expect(invalid.status).toBe(400)
    expect(await invalid.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_json' } })
    const huge = await post(
      JSON.stringify({ model: 'lull-tiny', messages: [{ role: 'user', content: 'x'.repeat(5 * 1024 * 1024) }] }),
    )
    expect(huge.status).toBe(413)
    const unknown = await fetch(`${proxy.baseUrl}/embeddings`, { method: 'POST', body: '{}' })
    expect(unknown.status).toBe(404)
    expect(((await unknown.json()) as { error: unknown }).error).toHaveProperty('message')
  })

  it('cancels the request on the node when the HTTP client goes away mid-stream', async () => {
    const cancelled = () => network.nodes.reduce((sum, node) => sum + node.stats.requestsCancelled, 0)
    const before = cancelled()
    const controller = new AbortController()
    const stream = await openai.chat.completions.create(
      {
        model: 'lull-tiny',
        messages: [{ role: 'user', content: 'Go on for a long time' }],
        max_tokens: 2000,
        // Greedy: lull-tiny then never ends early (a sampled answer may end after a few sentences).
        temperature: 0,
        stream: true,
      },
      { signal: controller.signal },
    )
    let chunks = 0
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) chunks++
      if (chunks === 2) break
    }
    const deadline = Date.now() + 10_000
    while (cancelled() === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(cancelled() - before).toBe(1)
    while (network.nodes[0]?.busySlots !== 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20))
    expect(network.nodes[0]?.busySlots).toBe(0)
  })

  it('lull proxy serves the same API from the command line', async () => {
    const cli = join(resolve(import.meta.dirname, '..', '..'), 'client-sdk/dist/cli.js')
    const child = spawn(process.execPath, [cli, 'proxy', '--coordinator', network.address, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      const baseUrl = await new Promise<string>((resolveUrl, reject) => {
        let output = ''
        child.stdout.on('data', (data: Buffer) => {
          output += data.toString()
          const match = /listening on (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(output)
          if (match?.[1] !== undefined) resolveUrl(match[1])
        })
        child.once('exit', (code) => reject(new Error(`lull proxy exited with ${code}: ${output}`)))
      })
      const cliOpenai = new OpenAI({ baseURL: baseUrl, apiKey: 'unused', maxRetries: 0 })
      const completion = await cliOpenai.chat.completions.create({
        model: 'lull-tiny',
        messages: MESSAGES,
        max_tokens: 8,
      })
      expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0)
    } finally {
      const exited = new Promise((resolveExit) => child.once('exit', resolveExit))
      child.kill('SIGTERM')
      await exited
    }
  })
})

describe('the proxy when the network has no capacity', () => {
  // A real `no-capacity` refusal needs the coordinator's per-model queue (1,024 requests) to be full, or a request
  // to wait out its 30 s queue timeout; both are too slow for this suite. The client here raises exactly the error
  // the SDK raises when the coordinator refuses for capacity, after its own retries.
  let proxy: ProxyServer
  beforeAll(async () => {
    const overloaded: ProxyClient = {
      models: async () => [],
      chat: () =>
        new ChatStream(
          // biome-ignore lint/correctness/useYield: an attempt that fails before its first event
          (async function* () {
            throw new RemoteError(ErrorCode.NoCapacity, 'the queue for this model is full; retry later')
          })(),
        ),
      complete: () => {
        throw new Error('not used')
      },
    }
    proxy = await createProxyServer({ client: overloaded, port: 0 })
  })
  afterAll(async () => {
    await proxy?.close()
  })

  it('answers 503 with Retry-After, which openai raises as a retryable InternalServerError', async () => {
    const openai = new OpenAI({ baseURL: proxy.baseUrl, apiKey: 'unused', maxRetries: 0 })
    const request = openai.chat.completions.create({ model: 'lull-tiny', messages: MESSAGES, stream: true })
    await expect(request).rejects.toBeInstanceOf(OpenAI.InternalServerError)
    await expect(request).rejects.toMatchObject({ status: 503, code: 'no_capacity' })
    const error = (await request.catch((caught: unknown) => caught)) as InstanceType<typeof OpenAI.APIError>
    expect(error.headers?.get('retry-after')).toBe('1')
  })
})
