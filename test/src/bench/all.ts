/**
 * `npm run bench`: every benchmark in turn, each printing its table and writing bench-results/<name>.json.
 * Benchmarks report; they never fail the build. `--only crypto,batching` runs a subset.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { only: { type: 'string' } } })

/** Name, script (next to this file) and the arguments the published figures use. */
const BENCHMARKS: Array<{ name: string; script: string; args: string[] }> = [
  { name: 'crypto', script: 'crypto.js', args: [] },
  { name: 'batching', script: 'batching.js', args: ['--concurrency', '1,2,4,8,16'] },
  { name: 'contention', script: 'contention.js', args: [] },
  { name: 'overhead', script: 'overhead.js', args: [] },
  { name: 'scheduling', script: 'scheduling.js', args: [] },
  { name: 'scale', script: 'scale.js', args: [] },
]

const only = values.only?.split(',')
const failed: string[] = []
for (const benchmark of BENCHMARKS) {
  if (only !== undefined && !only.includes(benchmark.name)) continue
  const script = join(import.meta.dirname, benchmark.script)
  if (!existsSync(script)) continue
  process.stdout.write(`\n=== ${benchmark.name} ===\n`)
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [script, ...benchmark.args], { stdio: 'inherit' })
    child.once('exit', resolve)
  })
  if (code !== 0) failed.push(benchmark.name)
}
if (failed.length > 0) {
  process.stderr.write(`\nthese benchmarks did not finish: ${failed.join(', ')} (see their output above)\n`)
  process.exitCode = 1
}
