/**
 * The node's private, content-addressed copies of operator-supplied model files: `<dataDir>/models/sha256/<hex>.gguf`,
 * read-only. The node hashes a file while copying it here and then validates and loads only the copy, so the digest
 * it advertises is the digest of the bytes it loads, even if the original is modified or replaced meanwhile (or
 * later: llama.cpp maps model files into memory and reads them lazily, so a change to a mapped original would
 * change the weights of a running node).
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { chmod, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'

/** Temporary copies untouched for this long are left over from an interrupted start and removed. */
const STALE_TEMPORARY_MS = 10 * 60 * 1000
const STORED_NAME = /^[0-9a-f]{64}\.gguf$/
const TEMPORARY_NAME = /^incoming\.[0-9]+\.[0-9a-f]+\.tmp$/

export function modelStoreDirectory(dataDir: string): string {
  return join(dataDir, 'models', 'sha256')
}

export function storedModelPath(dataDir: string, sha256: string): string {
  return join(modelStoreDirectory(dataDir), `${sha256}.gguf`)
}

/** A copy of a model file in the store's directory, hashed as it was written, not yet under its final name. */
export interface IncomingCopy {
  temporaryPath: string
  sha256: string
  sizeBytes: number
}

/** Copies `source` into a temporary file in the store, hashing the bytes as they are written. */
export async function copyIntoStore(
  source: string,
  dataDir: string,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<IncomingCopy> {
  const directory = modelStoreDirectory(dataDir)
  await mkdir(directory, { recursive: true })
  const temporaryPath = join(directory, `incoming.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const hash = createHash('sha256')
  let sizeBytes = 0
  try {
    await pipeline(
      createReadStream(source, { highWaterMark: 1024 * 1024 }),
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk)
          sizeBytes += chunk.length
          yield chunk
        }
      },
      createWriteStream(temporaryPath, { flags: 'wx', mode: 0o600 }),
      options.signal === undefined ? {} : { signal: options.signal },
    )
    const handle = await open(temporaryPath, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch (error) {
    await rm(temporaryPath, { force: true })
    if ((error as NodeJS.ErrnoException).code === 'ENOSPC') {
      const { size } = await stat(source)
      throw new Error(
        `Not enough disk space in ${directory} for a copy of the model (${size} bytes). The node serves a private copy of each model file; free some space or use another --data-dir.`,
        { cause: error },
      )
    }
    throw error
  }
  return { temporaryPath, sha256: hash.digest('hex'), sizeBytes }
}

/** Gives an incoming copy its content address (read-only) and returns that path. */
export async function commitToStore(copy: IncomingCopy, dataDir: string): Promise<string> {
  const path = storedModelPath(dataDir, copy.sha256)
  await chmod(copy.temporaryPath, 0o444)
  await rename(copy.temporaryPath, path)
  return path
}

/** Removes stored copies no pin refers to (but not `keep`), and temporary copies left by interrupted starts. */
export async function pruneStore(dataDir: string, keep: ReadonlySet<string>): Promise<void> {
  const directory = modelStoreDirectory(dataDir)
  let names: string[]
  try {
    names = await readdir(directory)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  const now = Date.now()
  for (const name of names) {
    const path = join(directory, name)
    if (STORED_NAME.test(name)) {
      if (!keep.has(name.slice(0, 64))) await rm(path, { force: true })
    } else if (TEMPORARY_NAME.test(name)) {
      const info = await stat(path).catch(() => undefined)
      if (info !== undefined && now - info.mtimeMs > STALE_TEMPORARY_MS) await rm(path, { force: true })
    }
  }
}
