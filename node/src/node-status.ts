import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { HardwareSummary } from '@lull/proto'
import type { LiveHardware } from './hardware.js'
import type { IdleSignals, PolicyState } from './idle-policy.js'
import { writeFileAtomically } from './model/atomic-write-file.js'

/** The daemon's local status file, in its data dir. Counts and states only: never anything asked or answered. */
export const STATUS_FILE_NAME = 'status.json'
/** How often a running node rewrites its status file (and at once on every state change). */
export const STATUS_INTERVAL_MS = 2_000
/** A status file not rewritten for this long belongs to a node that is no longer running. */
export const STATUS_STALE_MS = 3 * STATUS_INTERVAL_MS + 2_000

export interface NodeStatusReport {
  version: 1
  pid: number
  nodeId: string
  agent: string
  startedAtMs: number
  updatedAtMs: number
  uptimeMs: number
  state: PolicyState
  reason?: string
  stateSinceMs: number
  /** `--when`: idle, always or HH:MM-HH:MM. */
  when: string
  graceMs: number
  signals: IdleSignals | null
  /** Caveats about the idle signals on this system. */
  notes: string[]
  model: { id: string; sha256: string }
  slots: { total: number; busy: number }
  stats: {
    requestsServed: number
    requestsCancelled: number
    requestsFailed: number
    outputTokens: number
    requestsRefused: number
  }
  coordinator: { address: string; connected: boolean }
  hardware: HardwareSummary & LiveHardware
}

export function statusFilePath(dataDir: string): string {
  return join(dataDir, STATUS_FILE_NAME)
}

/** Writes the status file so that readers see the old or the new one, never a torn write. */
export async function writeStatusFile(dataDir: string, report: NodeStatusReport): Promise<void> {
  await writeFileAtomically(statusFilePath(dataDir), new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`))
}

export type StatusLookup =
  | { kind: 'missing'; path: string }
  | { kind: 'found'; path: string; report: NodeStatusReport; running: boolean }

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Reads a node's status file. `running` is false when its process is gone or the file has gone stale. */
export async function readStatusFile(dataDir: string, nowMs = Date.now()): Promise<StatusLookup> {
  const path = statusFilePath(dataDir)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing', path }
    throw error
  }
  const report = JSON.parse(text) as NodeStatusReport
  const running = report.state !== 'offline' && nowMs - report.updatedAtMs < STATUS_STALE_MS && processAlive(report.pid)
  return { kind: 'found', path, report, running }
}

function duration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000))
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`
}

const GIB = 1024 ** 3

/** The human view of `lull-node status`. */
export function formatStatus(report: NodeStatusReport, running: boolean, nowMs = Date.now()): string {
  const state = running ? report.state : 'offline'
  const reason = running && report.reason !== undefined ? ` (${report.reason})` : ''
  const signals = report.signals
  const signal = (value: unknown, render: (v: never) => string): string =>
    value === null || value === undefined ? 'unavailable' : render(value as never)
  const lines = [
    `node       ${report.nodeId}`,
    `state      ${state}${reason}, for ${duration(nowMs - report.stateSinceMs)}${running ? '' : ` (last seen ${duration(nowMs - report.updatedAtMs)} ago)`}`,
    `policy     --when ${report.when}, grace ${report.graceMs} ms`,
    `model      ${report.model.id} (sha256 ${report.model.sha256.slice(0, 12)}…)`,
    `slots      ${report.slots.busy}/${report.slots.total} in use`,
    `served     ${report.stats.requestsServed} requests, ${report.stats.outputTokens} tokens (${report.stats.requestsCancelled} cancelled, ${report.stats.requestsFailed} failed, ${report.stats.requestsRefused} refused while paused)`,
    `uptime     ${duration(report.uptimeMs)}`,
    `link       ${report.coordinator.connected ? 'connected' : 'not connected'} to ${report.coordinator.address}`,
    `hardware   ${report.hardware.os}/${report.hardware.arch}, ${report.hardware.cpuModel}, ${report.hardware.cpuCores} cores, RAM ${(report.hardware.ramFreeBytes / GIB).toFixed(1)}/${(report.hardware.ramTotalBytes / GIB).toFixed(1)} GiB free, GPU ${report.hardware.gpu}, load ${report.hardware.loadAverage}`,
  ]
  if (signals !== null) {
    lines.push(
      `signals    input idle ${signal(signals.userIdleSeconds, (v: number) => `${Math.floor(v)} s`)}, ` +
        `on battery ${signal(signals.onBattery, (v: boolean) => (v ? 'yes' : 'no'))}, ` +
        `battery ${signal(signals.batteryPercent, (v: number) => `${Math.round(v)}%`)}, ` +
        `thermal pressure ${signal(signals.thermalPressure, (v: boolean) => (v ? 'yes' : 'no'))}, ` +
        `other CPU ${signal(signals.otherCpuFraction, (v: number) => `${Math.round(v * 100)}%`)}`,
    )
  }
  for (const note of report.notes) lines.push(`note       ${note}`)
  return `${lines.join('\n')}\n`
}
