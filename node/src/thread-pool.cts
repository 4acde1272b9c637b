import { availableParallelism } from 'node:os'

/**
 * How many libuv thread-pool threads the node runs with on a machine with `cpus` logical CPUs: one per CPU beyond
 * the one Node's main thread needs, at least 1 and at most libuv's default of 4.
 *
 * node-llama-cpp runs each batch's evaluation and then each sequence's sampling as jobs on this pool. libuv starts
 * 4 threads whatever the machine; on 2 CPUs, where the main thread (token handling, networking, sealing) needs one,
 * 8 sequences' sampling jobs spread over 4 threads contend for the other and together take longer than one after
 * another. Measured on a 2-CPU machine (`npm run bench:batching -- --concurrency 8`, 7 runs each, alternating):
 * 8 requests in flight ran at 2.05× one at a time with 4 pool threads (2.00-2.09), 2.25× with 1 (1.96-2.45).
 * Machines with 5 or more CPUs keep libuv's default.
 */
export function threadPoolSizeFor(cpus: number): number {
  return Math.min(4, Math.max(1, cpus - 1))
}

/**
 * Sets `UV_THREADPOOL_SIZE` for this process unless the environment already does. libuv reads it once, when the
 * pool starts, and loading an ES module starts it: so this is CommonJS, and runs from `lull-node`'s CommonJS entry
 * (bin.cts) before the CLI's modules load.
 */
export function sizeThreadPool(): void {
  process.env.UV_THREADPOOL_SIZE ??= String(threadPoolSizeFor(availableParallelism()))
}
