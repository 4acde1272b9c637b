import type { ExplainMessage, StatusMessage } from '@lull/proto'
import Table from 'cli-table3'

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(bytes >= 10 * 1024 ** 3 ? 0 : 1)} GiB`
}

function ago(nowMs: number, atMs: number): string {
  const seconds = Math.max(0, Math.round((nowMs - atMs) / 1000))
  return seconds < 120 ? `${seconds}s ago` : `${Math.round(seconds / 60)}m ago`
}

function ms(value: number | undefined): string {
  return value === undefined ? '-' : `${Math.round(value)} ms`
}

/** The status as tables for people: one row per node, then the network totals. */
export function formatStatus(status: StatusMessage): string {
  const nodes = new Table({
    head: [
      'node',
      'hardware',
      'model',
      'state',
      'slots',
      'served',
      'errors',
      'tok/s (1 min)',
      'bench tok/s',
      'last seen',
    ],
    style: { head: [], border: [] },
  })
  for (const node of status.nodes) {
    const { hardware } = node
    const gpu = hardware.gpu === 'none' ? 'cpu' : `${hardware.gpu} ${gib(hardware.vramTotalBytes)}`
    nodes.push([
      node.nodeId,
      [
        `${hardware.os}/${hardware.arch}, ${hardware.cpuCores} cores`,
        node.ramFreeBytes === undefined
          ? gib(hardware.ramTotalBytes)
          : `${gib(hardware.ramTotalBytes)} (${gib(node.ramFreeBytes)} free)`,
        ...(node.loadAverage === undefined ? [] : [`load ${node.loadAverage.toFixed(2)}`]),
        gpu,
      ].join(', '),
      node.modelId,
      node.stateReason === undefined ? node.state : `${node.state} (${node.stateReason})`,
      `${node.busySlots}/${node.slots}`,
      String(node.requestsServed),
      node.failovers > 0 ? `${node.errors} (${node.failovers} failed over)` : String(node.errors),
      node.recentTokensPerSecond === undefined ? '-' : node.recentTokensPerSecond.toFixed(1),
      node.benchmark.decodeTokensPerSecond.toFixed(0),
      ago(status.nowMs, node.lastSeenMs),
    ])
  }
  const { totals } = status
  const queued = totals.queued.filter((entry) => entry.depth > 0)
  const summary = new Table({ style: { head: [], border: [] } })
  summary.push(
    { nodes: `${totals.nodes} (${totals.servingNodes} serving)` },
    { capacity: `${totals.busySlots}/${totals.slots} slots busy` },
    { queued: queued.length === 0 ? 'none' : queued.map((entry) => `${entry.modelId}: ${entry.depth}`).join(', ') },
    { 'requests/min': String(totals.requestsPerMinute) },
    { 'served / failed / failovers': `${totals.requestsServed} / ${totals.requestsFailed} / ${totals.failovers}` },
    { 'time to first token': `p50 ${ms(totals.ttftP50Ms)}, p95 ${ms(totals.ttftP95Ms)}` },
    {
      'output tokens/s (1 min)':
        totals.tokensPerSecond === undefined
          ? '-'
          : `${totals.tokensPerSecond.toFixed(1)} (${totals.outputTokensServed ?? 0} tokens served in all)`,
    },
  )
  const empty = status.nodes.length === 0 ? 'no nodes registered\n' : `${nodes.toString()}\n`
  return `coordinator ${status.coordinatorId}\n${empty}${summary.toString()}\n`
}

export function formatExplain(explained: ExplainMessage): string {
  const lines = [
    `request ${explained.requestId} (node-side id ${explained.nodeRequestId ?? '-'}), model ${explained.model}`,
  ]
  const startMs = explained.decisions[0]?.atMs ?? 0
  for (const decision of explained.decisions) {
    const node = decision.nodeId === undefined ? '' : ` [${decision.nodeId}]`
    lines.push(`  +${decision.atMs - startMs} ms  ${decision.event}${node}: ${decision.reason}`)
  }
  return `${lines.join('\n')}\n`
}
