import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ModelRejectedError } from '../model/errors.js'
import { encodeGguf } from '../model/gguf-writer.js'
import { buildLullTinyParts, ensureLullTinyModel } from '../model/lull-tiny.js'
import { trialLoadModel } from './trial-load.js'

let dir: string
let tinyPath: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lull-trial-load-'))
  tinyPath = (await ensureLullTinyModel(dir)).path
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function script(name: string, source: string): Promise<string> {
  const path = join(dir, `${name}.mjs`)
  await writeFile(path, source)
  return path
}

async function refusal(promise: Promise<unknown>): Promise<ModelRejectedError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ModelRejectedError)
  return error as ModelRejectedError
}

describe('trialLoadModel', () => {
  // prepare-model.test.ts trial-loads lull-tiny for real; this file covers the ways a trial can fail.
  it('survives a model that aborts llama.cpp, and says why', async () => {
    // Without llama.feed_forward_length llama.cpp fails GGML_ASSERT and aborts: loaded in this process, it would end
    // the test run. (prepareModel's metadata check refuses this file earlier; here the child is the only guard.)
    const { metadata, tensors } = buildLullTinyParts()
    metadata.delete('llama.feed_forward_length')
    const path = join(dir, 'no-feed-forward-length.gguf')
    await writeFile(path, encodeGguf(metadata, tensors))
    const error = await refusal(trialLoadModel(path, { threads: 1, gpu: false }))
    expect(error.reason).toBe('trial-load-crashed')
    expect(error.message).toContain(path)
    expect(error.message).toMatch(/was killed by SIGABRT/)
    expect(error.message).toMatch(/GGML_ASSERT/)
    expect(error.message).toMatch(/would have taken the node down/)
  })

  it('reports a crash, an error and a hang of the child', async () => {
    const aborts = await script('aborts', 'process.abort()\n')
    const crashed = await refusal(trialLoadModel(tinyPath, { threads: 1, gpu: false, script: aborts }))
    expect(crashed.reason).toBe('trial-load-crashed')

    const fails = await script(
      'fails',
      `process.stderr.write('error loading model: \\u001b[31mbad\\u0007 tensor\\n')
process.send({ ok: false, message: 'Failed to load model' }, () => process.exit(1))\n`,
    )
    const failed = await refusal(trialLoadModel(tinyPath, { threads: 1, gpu: false, script: fails }))
    expect(failed.reason).toBe('trial-load-failed')
    expect(failed.message).toMatch(/Failed to load model.*error loading model: \[31mbad tensor/)

    const silent = await script('silent', 'process.exit(0)\n')
    expect((await refusal(trialLoadModel(tinyPath, { threads: 1, gpu: false, script: silent }))).reason).toBe(
      'trial-load-crashed',
    )

    const hangs = await script('hangs', 'setInterval(() => {}, 1000)\n')
    const timedOut = await refusal(trialLoadModel(tinyPath, { threads: 1, gpu: false, script: hangs, timeoutMs: 300 }))
    expect(timedOut.reason).toBe('trial-load-timeout')

    const reported = await script(
      'reported',
      `const request = JSON.parse(process.env.LULL_TRIAL_LOAD_REQUEST)
process.send({ ok: request.modelPath.endsWith('.gguf') && request.threads === 3 && request.gpu === false }, () => process.exit(0))\n`,
    )
    await trialLoadModel(tinyPath, { threads: 3, gpu: false, script: reported })
  })

  it('stops the child when aborted', async () => {
    const hangs = await script('hangs-abort', 'setInterval(() => {}, 1000)\n')
    const controller = new AbortController()
    const trial = trialLoadModel(tinyPath, { threads: 1, gpu: false, script: hangs, signal: controller.signal })
    setTimeout(() => controller.abort(new Error('stop now')), 100)
    await expect(trial).rejects.toThrow('stop now')
  })
})
