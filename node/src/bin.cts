#!/usr/bin/env node
// lull-node's entry. CommonJS on purpose: libuv sizes its thread pool once, when the pool starts, and loading an
// ES module starts it. So the size is set first (thread-pool.cts says why), then the CLI loads.
import { sizeThreadPool } from './thread-pool.cjs'

sizeThreadPool()
void import('./cli.js')
