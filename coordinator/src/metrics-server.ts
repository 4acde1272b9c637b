import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { StatusMessage } from '@lull/proto'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'

export interface MetricsServer {
  /** e.g. `http://127.0.0.1:9464/metrics` */
  readonly url: string
  close(): Promise<void>
}

/**
 * A Prometheus endpoint (`GET /metrics`) computed at scrape time from the coordinator's status: node states, slots,
 * queue depth per model, request outcomes, time to first token, and the process's own metrics. Counts and ids of
 * models only: no payload, no ciphertext, no client or request ids.
 */
export async function startMetricsServer(
  status: () => StatusMessage,
  options: { port: number; host?: string },
): Promise<MetricsServer> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'lull_coordinator_' })
  let snapshot: StatusMessage | undefined
  const current = (): StatusMessage => {
    snapshot ??= status()
    return snapshot
  }
  const gauge = (name: string, help: string, labelNames: string[], read: (metric: Gauge) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset()
        read(this)
      },
    })
  const total = (name: string, help: string, read: (status: StatusMessage) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset()
        this.inc(read(current()))
      },
    })

  gauge('lull_nodes', 'Registered nodes by state.', ['state'], (metric) => {
    for (const state of ['serving', 'paused', 'draining']) {
      metric.set({ state }, current().nodes.filter((node) => node.state === state).length)
    }
  })
  gauge('lull_slots', 'Parallel sequences offered by registered nodes.', [], (metric) =>
    metric.set(current().totals.slots),
  )
  gauge('lull_slots_busy', 'Slots running a request now.', [], (metric) => metric.set(current().totals.busySlots))
  gauge('lull_queue_depth', 'Requests waiting for a free slot, per model.', ['model'], (metric) => {
    for (const { modelId, depth } of current().totals.queued) metric.set({ model: modelId }, depth)
  })
  gauge('lull_requests_per_minute', 'Requests completed in the last minute.', [], (metric) =>
    metric.set(current().totals.requestsPerMinute),
  )
  gauge(
    'lull_time_to_first_token_ms',
    'Time from submit to the first relayed chunk, recent requests.',
    ['quantile'],
    (metric) => {
      const { ttftP50Ms, ttftP95Ms } = current().totals
      if (ttftP50Ms !== undefined) metric.set({ quantile: '0.5' }, ttftP50Ms)
      if (ttftP95Ms !== undefined) metric.set({ quantile: '0.95' }, ttftP95Ms)
    },
  )
  gauge(
    'lull_output_tokens_per_second',
    'Output tokens of requests finished in the last minute, per second.',
    [],
    (metric) => metric.set(current().totals.tokensPerSecond ?? 0),
  )
  total('lull_requests_served_total', 'Requests answered to the end.', (s) => s.totals.requestsServed)
  total(
    'lull_output_tokens_total',
    'Output tokens of requests answered to the end.',
    (s) => s.totals.outputTokensServed ?? 0,
  )
  total('lull_requests_failed_total', 'Requests that ended in an error.', (s) => s.totals.requestsFailed)
  total('lull_failovers_total', 'Requests moved to another node before their first token.', (s) => s.totals.failovers)

  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: scrape GET /metrics\n')
      return
    }
    snapshot = undefined
    registry
      .metrics()
      .then((text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch(() => response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'))
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
