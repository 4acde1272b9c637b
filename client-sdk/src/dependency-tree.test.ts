import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/**
 * The SDK stays light: nothing in its installed dependency tree is node-llama-cpp (or another native inference
 * runtime). The tree is walked the way Node resolves packages: each dependency from the nearest `node_modules` up
 * the directory tree, workspace links followed to their package.
 */
const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const HEAVY_PACKAGES = ['node-llama-cpp', '@node-llama-cpp/linux-x64', 'llama.cpp']

interface PackageJson {
  name?: string
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

function readPackage(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson
}

/** The directory `name` resolves to from `fromDir`, or undefined when it is not installed (an optional dependency). */
function resolvePackageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name)
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate)
    if (dirname(dir) === dir) return undefined
  }
}

/** Every package installed for `rootDir`'s runtime dependencies, transitively, by name. */
function runtimeDependencyTree(rootDir: string): Set<string> {
  const seen = new Set<string>()
  const visited = new Set<string>()
  const queue = [rootDir]
  while (queue.length > 0) {
    const dir = queue.pop() as string
    if (visited.has(dir)) continue
    visited.add(dir)
    const json = readPackage(dir)
    const names = Object.keys({ ...json.dependencies, ...json.optionalDependencies, ...json.peerDependencies })
    for (const name of names) {
      seen.add(name)
      const found = resolvePackageDir(name, dir)
      if (found !== undefined) queue.push(found)
    }
  }
  return seen
}

describe('the client SDK dependency tree', () => {
  it('has no node-llama-cpp anywhere in it', () => {
    const tree = runtimeDependencyTree(PACKAGE_DIR)
    // The walk reached the real tree (the wire stack, through the workspace link to proto).
    expect(tree).toContain('@lull/proto')
    expect(tree).toContain('libp2p')
    expect(tree).toContain('msgpackr')
    for (const heavy of HEAVY_PACKAGES) expect(tree, `${heavy} is in the SDK's dependency tree`).not.toContain(heavy)
  })

  it("finds node-llama-cpp in the node package's tree (the walk would notice it)", () => {
    expect(runtimeDependencyTree(resolve(PACKAGE_DIR, '..', 'node'))).toContain('node-llama-cpp')
  })
})
