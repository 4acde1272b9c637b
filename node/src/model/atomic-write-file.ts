import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * Writes `bytes` to `path` so that readers see either the old file or the complete new one:
 * the bytes go to a temporary file beside it, are flushed to disk, then renamed over `path`.
 */
export async function writeFileAtomically(
  path: string,
  bytes: Uint8Array,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const temporaryPath = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    const handle = await open(temporaryPath, 'w')
    try {
      await handle.writeFile(bytes, { signal: options.signal })
      await handle.sync()
    } finally {
      await handle.close()
    }
    options.signal?.throwIfAborted()
    await rename(temporaryPath, path)
  } catch (error) {
    await rm(temporaryPath, { force: true })
    throw error
  }
}
