#!/usr/bin/env node
import '@lull/proto/polyfill'
import { Command, InvalidArgumentError } from 'commander'
import { LullClient } from './client.js'
import { LullError } from './errors.js'
import { createProxyServer, DEFAULT_PROXY_PORT } from './openai-proxy.js'

const COORDINATOR_HELP = 'coordinator multiaddr (ends in /p2p/<id>); also read from LULL_COORDINATOR'

function integer(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed)) throw new InvalidArgumentError('expected an integer')
  return parsed
}

function number(value: string): number {
  const parsed = Number(value)
  if (!Number.isFinite(parsed)) throw new InvalidArgumentError('expected a number')
  return parsed
}

const API_KEY_HELP = 'the API key the coordinator knows you by (lull_sk_…); also read from LULL_API_KEY'

/** The API key from `--api-key` or LULL_API_KEY, as client options. */
function apiKeyFrom(options: { apiKey?: string }): { apiKey?: string } {
  const apiKey = options.apiKey ?? (process.env.LULL_API_KEY || undefined)
  return apiKey === undefined ? {} : { apiKey }
}

function coordinatorFrom(options: { coordinator?: string }): string {
  const address = options.coordinator ?? (process.env.LULL_COORDINATOR || undefined)
  if (address === undefined) fail('no coordinator given: pass --coordinator ADDR or set LULL_COORDINATOR')
  return address
}

function fail(message: string): never {
  process.stderr.write(`lull: ${message}\n`)
  process.exit(1)
}

const program = new Command()
  .name('lull')
  .description(
    'Ask a Lull network. Prompts are sealed on this machine so that only the node that runs them can read them.',
  )

program
  .command('ask')
  .description('send one prompt and stream the answer')
  .argument('<prompt>', 'what to ask')
  .option('--coordinator <multiaddr>', COORDINATOR_HELP)
  .option('--model <id>', 'model to use', 'lull-tiny')
  .option('--max-tokens <n>', 'longest answer in tokens', integer, 128)
  .option('--temperature <t>', 'sampling temperature (0 = greedy)', number, 0.8)
  .option('--seed <n>', 'sampling seed, for repeatable answers', integer)
  .option('--api-key <key>', API_KEY_HELP)
  .option('--json', 'print one JSON object with the answer, usage and node instead of streaming text', false)
  .action(
    async (
      prompt: string,
      options: {
        coordinator?: string
        model: string
        maxTokens: number
        temperature: number
        seed?: number
        apiKey?: string
        json: boolean
      },
    ) => {
      const client = await LullClient.connect({ coordinator: coordinatorFrom(options), ...apiKeyFrom(options) }).catch(
        (error: Error) => fail(error.message),
      )
      const controller = new AbortController()
      process.once('SIGINT', () => controller.abort())
      try {
        const stream = client.chat({
          model: options.model,
          messages: [{ role: 'user', content: prompt }],
          maxTokens: options.maxTokens,
          temperature: options.temperature,
          ...(options.seed === undefined ? {} : { seed: options.seed }),
          signal: controller.signal,
        })
        if (options.json) {
          process.stdout.write(`${JSON.stringify(await stream.final())}\n`)
        } else {
          for await (const event of stream) {
            if (event.type === 'text-delta') process.stdout.write(event.text)
            else {
              process.stdout.write('\n')
              process.stderr.write(
                `[${event.finishReason}; ${event.usage.outputTokens} tokens from node …${event.nodeId.slice(-8)}]\n`,
              )
            }
          }
        }
      } catch (error) {
        const detail = error instanceof LullError ? ` (${error.code}${error.isRetryable ? ', retryable' : ''})` : ''
        fail(`${(error as Error).message}${detail}`)
      } finally {
        await client.close()
      }
    },
  )

program
  .command('models')
  .description('list the models the network serves and the nodes serving them')
  .option('--coordinator <multiaddr>', COORDINATOR_HELP)
  .option('--api-key <key>', API_KEY_HELP)
  .option('--json', 'print JSON', false)
  .action(async (options: { coordinator?: string; apiKey?: string; json: boolean }) => {
    const client = await LullClient.connect({ coordinator: coordinatorFrom(options), ...apiKeyFrom(options) }).catch(
      (error: Error) => fail(error.message),
    )
    try {
      const models = await client.models()
      if (options.json) {
        const plain = models.map((model) => ({
          id: model.id,
          nodes: model.nodes.map(({ certificate: _certificate, ...node }) => node),
        }))
        process.stdout.write(`${JSON.stringify(plain, null, 2)}\n`)
        return
      }
      if (models.length === 0) process.stdout.write('no models are served right now\n')
      for (const model of models) {
        const slots = model.nodes.reduce((sum, node) => sum + node.slots, 0)
        process.stdout.write(`${model.id}\t${model.nodes.length} node(s), ${slots} slot(s)\n`)
      }
    } catch (error) {
      fail((error as Error).message)
    } finally {
      await client.close()
    }
  })

program
  .command('proxy')
  .description(
    'serve the OpenAI API on 127.0.0.1 (/v1/models, /v1/chat/completions, /v1/completions); requests are sealed here, so prompts leave this machine encrypted',
  )
  .option('--coordinator <multiaddr>', COORDINATOR_HELP)
  .option('--api-key <key>', API_KEY_HELP)
  .option('--port <n>', 'port on 127.0.0.1 (0 picks a free one)', integer, DEFAULT_PROXY_PORT)
  .action(async (options: { coordinator?: string; apiKey?: string; port: number }) => {
    const apiKey = options.apiKey ?? (process.env.LULL_API_KEY || undefined)
    const proxy = await createProxyServer({
      coordinator: coordinatorFrom(options),
      ...(apiKey === undefined ? {} : { apiKey }),
      port: options.port,
    }).catch((error: Error) => fail(error.message))
    process.stdout.write(
      `lull proxy listening on ${proxy.baseUrl}\nPoint any OpenAI client at it, e.g. OPENAI_BASE_URL=${proxy.baseUrl} OPENAI_API_KEY=unused\n`,
    )
    const stop = (): void => {
      void proxy.close().then(() => process.exit(0))
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })

await program.parseAsync(process.argv)
