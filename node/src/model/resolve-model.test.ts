import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureLullTinyModel } from './lull-tiny.js'
import { resolveModel } from './resolve-model.js'

let dataDir: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-resolve-'))
})

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

describe('resolveModel', () => {
  it('generates lull-tiny under the data directory', async () => {
    const resolved = await resolveModel('lull-tiny', dataDir)
    expect(resolved.id).toBe('lull-tiny')
    expect(resolved.path).toBe(join(dataDir, 'models', 'lull-tiny.gguf'))
  })

  it('accepts a local GGUF file and names it after the file', async () => {
    const tiny = await ensureLullTinyModel(dataDir)
    const resolved = await resolveModel(tiny.path, join(dataDir, 'elsewhere'))
    expect(resolved).toEqual({ ...tiny, id: 'lull-tiny' })

    const custom = join(dataDir, 'my-model.Q4.gguf')
    await writeFile(custom, 'GGUF\u0003')
    const named = await resolveModel(custom, dataDir)
    expect(named.id).toBe('my-model.Q4')
    expect(named.sizeBytes).toBe(5)
  })

  it('rejects a missing file, a directory and a file that is not GGUF', async () => {
    await expect(resolveModel(join(dataDir, 'absent.gguf'), dataDir)).rejects.toThrow(/not found.*lull-tiny/)
    await expect(resolveModel(dataDir, dataDir)).rejects.toThrow(/directory/)
    const notGguf = join(dataDir, 'model.bin')
    await writeFile(notGguf, 'PK\u0003\u0004 a zip file')
    await expect(resolveModel(notGguf, dataDir)).rejects.toThrow(/Not a GGUF model file/)
  })
})
