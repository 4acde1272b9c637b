import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ModelRejectedError } from './errors.js'
import { sha256File } from './file-digest.js'
import { encodeGguf, type GgufValue } from './gguf-writer.js'
import { buildLullTinyParts, ensureLullTinyModel, type GgufParts, LULL_TINY_MODEL_ID } from './lull-tiny.js'
import { pinsFilePath, readPins } from './model-pins.js'
import { modelStoreDirectory } from './model-store.js'
import { type PrepareModelOptions, prepareModel } from './prepare-model.js'
import { parseModelSpec, resolveModel } from './resolve-model.js'

let dir: string
let tinyPath: string
let tinySha256: string
/** A trial-load child that reports success at once: for tests about digests and pins, not about llama.cpp. */
let trialPasses: string
let tinyParts: GgufParts

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lull-prepare-model-'))
  const tiny = await ensureLullTinyModel(join(dir, 'generated'))
  tinyPath = tiny.path
  tinySha256 = tiny.sha256
  trialPasses = join(dir, 'trial-passes.mjs')
  await writeFile(trialPasses, 'process.send({ ok: true }, () => process.exit(0))\n')
  tinyParts = buildLullTinyParts()
})

/** lull-tiny's parts with a copy of the metadata, to edit. */
function tinyWithMetadata(): GgufParts {
  return { metadata: new Map(tinyParts.metadata), tensors: tinyParts.tensors }
}

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

let caseCount = 0
/** A fresh data directory and a copy of lull-tiny outside it, as an operator's own model file. */
async function freshCase(): Promise<{ dataDir: string; modelPath: string }> {
  const caseDir = join(dir, `case-${caseCount++}`)
  const dataDir = join(caseDir, 'data')
  const modelPath = join(caseDir, 'my-model.gguf')
  await mkdir(caseDir, { recursive: true })
  await copyFile(tinyPath, modelPath)
  return { dataDir, modelPath }
}

const FAST: PrepareModelOptions = { threads: 1, gpu: false }

async function refusal(promise: Promise<unknown>): Promise<ModelRejectedError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ModelRejectedError)
  return error as ModelRejectedError
}

async function storedFiles(dataDir: string): Promise<string[]> {
  return (await readdir(modelStoreDirectory(dataDir)).catch(() => [] as string[])).sort()
}

/** Flips one byte of tensor data (near the end of the file) in place. */
async function flipByte(path: string): Promise<void> {
  const { size } = await stat(path)
  const handle = await open(path, 'r+')
  try {
    const byte = Buffer.alloc(1)
    await handle.read(byte, 0, 1, size - 100)
    byte[0] = (byte[0] ?? 0) ^ 0xff
    await handle.write(byte, 0, 1, size - 100)
  } finally {
    await handle.close()
  }
}

describe('parseModelSpec', () => {
  it('splits an @sha256: suffix and merges it with an option', () => {
    const digest = 'AB'.repeat(32)
    expect(parseModelSpec(`/m/x.gguf@sha256:${digest}`)).toEqual({
      model: '/m/x.gguf',
      expectedSha256: 'ab'.repeat(32),
    })
    expect(parseModelSpec('lull-tiny', digest)).toEqual({ model: 'lull-tiny', expectedSha256: 'ab'.repeat(32) })
    expect(parseModelSpec('/m/user@host.gguf')).toEqual({ model: '/m/user@host.gguf', expectedSha256: undefined })
    expect(() => parseModelSpec('/m/x.gguf@sha256:abc')).toThrow(/not a SHA-256: give 64 hex characters/)
    expect(() => parseModelSpec(`/m/x.gguf@sha256:${digest}`, 'cd'.repeat(32))).toThrow(/Two different/)
  })
})

describe('prepareModel', () => {
  it('serves lull-tiny as generated: its pin is its build digest', async () => {
    const dataDir = join(dir, 'tiny-data')
    const model = await prepareModel(LULL_TINY_MODEL_ID, dataDir, FAST)
    expect(model).toMatchObject({ id: LULL_TINY_MODEL_ID, sha256: tinySha256, pin: 'built-in' })
    expect(model.path).toBe(join(dataDir, 'models', 'lull-tiny.gguf'))
    expect(await sha256File(model.path)).toBe(model.sha256)
    await expect(stat(pinsFilePath(dataDir))).rejects.toThrow()
    expect((await prepareModel(`lull-tiny@sha256:${tinySha256}`, dataDir, FAST)).sha256).toBe(tinySha256)
    const wrong = await refusal(prepareModel(LULL_TINY_MODEL_ID, dataDir, { ...FAST, expectedSha256: 'f'.repeat(64) }))
    expect(wrong.reason).toBe('digest-mismatch')
  })

  it('copies a model into the store, trial-loads and pins it, then serves the copy', async () => {
    const { dataDir, modelPath } = await freshCase()
    const first = await prepareModel(modelPath, dataDir, FAST) // the real trial load, in a child process
    expect(first).toMatchObject({ id: 'my-model', sha256: tinySha256, pin: 'new', sourcePath: modelPath })
    expect(first.path).toBe(join(modelStoreDirectory(dataDir), `${tinySha256}.gguf`))
    expect(await sha256File(first.path)).toBe(tinySha256)
    expect(first.sizeBytes).toBe((await stat(first.path)).size)
    expect((await stat(first.path)).mode & 0o222).toBe(0)
    expect((await readPins(dataDir)).get(modelPath)).toMatchObject({ sha256: tinySha256, sizeBytes: first.sizeBytes })

    const second = await prepareModel(modelPath, dataDir, { ...FAST, trialLoadScript: trialPasses })
    expect(second).toMatchObject({ path: first.path, sha256: tinySha256, pin: 'matched' })
    expect(await storedFiles(dataDir)).toEqual([`${tinySha256}.gguf`])
  })

  it('refuses a file that changed since it was pinned, until the new digest is confirmed', async () => {
    const { dataDir, modelPath } = await freshCase()
    const options = { ...FAST, trialLoadScript: trialPasses }
    const pinned = await prepareModel(modelPath, dataDir, options)
    await flipByte(modelPath)
    const changedSha256 = await sha256File(modelPath)

    const changed = await refusal(prepareModel(modelPath, dataDir, options))
    expect(changed.reason).toBe('changed-since-pinned')
    expect(changed.message).toContain(`its SHA-256 was ${tinySha256}`)
    expect(changed.message).toContain(`--model-sha256 ${changedSha256}`)
    expect(changed.message).toContain(pinsFilePath(dataDir))
    // The copy the node serves is untouched, and the refused bytes were not kept.
    expect(await sha256File(pinned.path)).toBe(tinySha256)
    expect(await storedFiles(dataDir)).toEqual([`${tinySha256}.gguf`])

    const confirmed = await prepareModel(`${modelPath}@sha256:${changedSha256}`, dataDir, options)
    expect(confirmed).toMatchObject({ sha256: changedSha256, pin: 'updated' })
    expect(await sha256File(confirmed.path)).toBe(changedSha256)
    expect((await readPins(dataDir)).get(modelPath)?.sha256).toBe(changedSha256)
    expect(await storedFiles(dataDir)).toEqual([`${changedSha256}.gguf`])
    expect((await prepareModel(modelPath, dataDir, options)).pin).toBe('matched')
  })

  it('refuses a file whose digest is not the expected one', async () => {
    const { dataDir, modelPath } = await freshCase()
    const options = { ...FAST, trialLoadScript: trialPasses }
    const other = 'e'.repeat(64)
    for (const attempt of [
      () => prepareModel(modelPath, dataDir, { ...options, expectedSha256: other }),
      () => prepareModel(`${modelPath}@sha256:${other}`, dataDir, options),
      () => resolveModel(modelPath, dataDir, { expectedSha256: other }),
    ]) {
      const error = await refusal(attempt())
      expect(error.reason).toBe('digest-mismatch')
      expect(error.message).toContain(`has SHA-256 ${tinySha256}, but ${other} was expected`)
    }
    await expect(stat(pinsFilePath(dataDir))).rejects.toThrow()
    expect(await storedFiles(dataDir)).toEqual([])
    // Once pinned, an expected digest also has to match (it is checked before the pin).
    await prepareModel(modelPath, dataDir, options)
    expect((await refusal(prepareModel(modelPath, dataDir, { ...options, expectedSha256: other }))).reason).toBe(
      'digest-mismatch',
    )
  })

  it('refuses, without loading or pinning, a model that would abort llama.cpp', async () => {
    const { dataDir, modelPath } = await freshCase()
    const { metadata, tensors } = tinyWithMetadata()
    metadata.delete('llama.feed_forward_length')
    await writeFile(modelPath, encodeGguf(metadata, tensors))
    const error = await refusal(prepareModel(modelPath, dataDir, FAST))
    expect(error.reason).toBe('missing-metadata')
    expect(error.message).toMatch(/'llama\.feed_forward_length' is missing/)
    await expect(stat(pinsFilePath(dataDir))).rejects.toThrow()
    expect(await storedFiles(dataDir)).toEqual([])
  })

  it('refuses a model that passes the metadata checks but crashes llama.cpp in the trial load', async () => {
    // A vocabulary with a duplicate token fails GGML_ASSERT(id_to_token.size() == token_to_id.size()) in llama.cpp.
    const { dataDir, modelPath } = await freshCase()
    const { metadata, tensors } = tinyWithMetadata()
    const tokens = metadata.get('tokenizer.ggml.tokens') as Extract<GgufValue, { type: 'string[]' }>
    const duplicated = [...tokens.value]
    duplicated[500] = duplicated[501]!
    metadata.set('tokenizer.ggml.tokens', { type: 'string[]', value: duplicated })
    await writeFile(modelPath, encodeGguf(metadata, tensors))

    const error = await refusal(prepareModel(modelPath, dataDir, FAST))
    expect(error.reason).toBe('trial-load-crashed')
    expect(error.message).toMatch(/SIGABRT.*GGML_ASSERT\(id_to_token\.size\(\) == token_to_id\.size\(\)\) failed/)
    await expect(stat(pinsFilePath(dataDir))).rejects.toThrow()
    expect(await storedFiles(dataDir)).toEqual([])
  })

  it('refuses truncated and non-GGUF files, and an unreadable pins file', async () => {
    const { dataDir, modelPath } = await freshCase()
    const bytes = await readFile(tinyPath)
    await writeFile(modelPath, bytes.subarray(0, bytes.length - 4096))
    expect((await refusal(prepareModel(modelPath, dataDir, FAST))).reason).toBe('truncated')
    await writeFile(modelPath, 'PK\u0003\u0004 a zip file')
    expect((await refusal(prepareModel(modelPath, dataDir, FAST))).reason).toBe('not-gguf')
    expect((await refusal(prepareModel(join(dir, 'absent.gguf'), dataDir, FAST))).reason).toBe('not-found')

    await copyFile(tinyPath, modelPath)
    await writeFile(pinsFilePath(dataDir), '{"version": 1, "pins": {"/x.gguf": {"sha256": "nope"}}}')
    const pins = await refusal(prepareModel(modelPath, dataDir, { ...FAST, trialLoadScript: trialPasses }))
    expect(pins.reason).toBe('invalid-pins-file')
    expect(pins.message).toMatch(/unreadable pin for \/x\.gguf.*delete it/)
  })
})
