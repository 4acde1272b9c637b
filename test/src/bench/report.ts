/**
 * How every benchmark reports: a table on stdout, progress on stderr, and one JSON file per benchmark under
 * `bench-results/` (or `--out DIR`), so docs/PERFORMANCE.md can quote figures with the command that made them.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import Table from 'cli-table3'

/** Where results go when no directory is given: `bench-results/` at the repository root. */
export const DEFAULT_RESULTS_DIR = resolve(import.meta.dirname, '..', '..', '..', 'bench-results')

export interface MachineInfo {
  cpuModel: string
  cpus: number
  memoryGiB: number
  node: string
  platform: string
}

export function machineInfo(): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  }
}

/** Prints rows as a table: the first row's keys are the columns. */
export function printTable(title: string, rows: ReadonlyArray<Record<string, string | number>>): void {
  const head = Object.keys(rows[0] ?? {})
  const table = new Table({ head, style: { head: [], border: [] } })
  for (const row of rows) table.push(head.map((key) => String(row[key] ?? '')))
  process.stdout.write(`\n${title}\n${table.toString()}\n`)
}

/** Writes `{ benchmark, ranAt, machine, command, ...result }` to `<dir>/<name>.json` and returns the path. */
export async function writeResult(name: string, result: object, dir = DEFAULT_RESULTS_DIR): Promise<string> {
  await mkdir(dir, { recursive: true })
  const path = join(dir, `${name}.json`)
  const record = {
    benchmark: name,
    ranAt: new Date().toISOString(),
    machine: machineInfo(),
    command: `node ${process.argv.slice(1).join(' ')}`,
    ...result,
  }
  await writeFile(path, `${JSON.stringify(record, null, 2)}\n`)
  return path
}

/** A one-line progress display on stderr that rewrites itself on a terminal and prints plain lines otherwise. */
export function progressLine(): (text: string) => void {
  const tty = process.stderr.isTTY === true
  return (text: string) => {
    if (tty) process.stderr.write(`\r${text.padEnd(72).slice(0, 72)}${text === '' ? '\r' : ''}`)
    else if (text !== '') process.stderr.write(`${text}\n`)
  }
}

/** Percentile `p` (0-100) of unsorted samples, nearest rank; undefined for none. */
export function percentile(samples: readonly number[], p: number): number | undefined {
  if (samples.length === 0) return undefined
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}
