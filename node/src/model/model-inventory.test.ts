import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { sha256Bytes } from './file-digest.js'
import { listModels, ModelNotFoundError, removeModel } from './model-inventory.js'
import { writePins } from './model-pins.js'
import { storedModelPath } from './model-store.js'

describe('the models in a data dir', () => {
  let dataDir: string | undefined
  afterEach(async () => {
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true })
  })

  it('keeps a stored copy while another pin still refers to the same bytes', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lull-inventory-'))
    const bytes = Buffer.from('GGUF same bytes under two names')
    const digest = sha256Bytes(bytes)
    const stored = storedModelPath(dataDir, digest)
    await mkdir(join(dataDir, 'models', 'sha256'), { recursive: true })
    await writeFile(stored, bytes)
    const pin = { sha256: digest, sizeBytes: bytes.length, pinnedAt: new Date(0).toISOString() }
    await writePins(
      dataDir,
      new Map([
        ['/models/a.gguf', pin],
        ['hf:lull/a-GGUF/a.gguf', pin],
      ]),
    )
    expect((await listModels(dataDir)).map((entry) => [entry.source, entry.state, entry.path])).toEqual([
      ['/models/a.gguf', 'ready', stored],
      ['hf:lull/a-GGUF/a.gguf', 'ready', stored],
    ])

    const first = await removeModel(dataDir, '/models/a.gguf')
    expect(first).toMatchObject({ unpinned: true, removedFiles: [], inUseByRunningNode: false })
    expect((await stat(stored)).size).toBe(bytes.length)

    const second = await removeModel(dataDir, 'hf:lull/a-GGUF/a.gguf')
    expect(second).toMatchObject({ unpinned: true, removedFiles: [stored] })
    await expect(stat(stored)).rejects.toThrow(/ENOENT/)
    expect(await listModels(dataDir)).toEqual([])
    await expect(removeModel(dataDir, 'hf:lull/a-GGUF/a.gguf')).rejects.toThrow(ModelNotFoundError)
  })
})
