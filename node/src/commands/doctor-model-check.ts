/** `lull-node doctor`'s model check: the model is present, a valid GGUF, and has the digest pinned or expected. */
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { sha256Bytes } from '../model/file-digest.js'
import {
  buildLullTinyGguf,
  isHfUri,
  LULL_TINY_MODEL_ID,
  ModelRejectedError,
  type ModelRejectionReason,
  parseHfUri,
  parseModelSpec,
  readPins,
  sha256File,
  validateGgufFile,
} from '../model/index.js'
import { storedModelPath } from '../model/model-store.js'
import { checkModelFile } from '../model/resolve-model.js'
import { type CheckResult, formatGib } from './doctor-checks.js'

const MODEL_FIXES: Partial<Record<ModelRejectionReason, string>> = {
  'not-found': `pass --model ${LULL_TINY_MODEL_ID} (built in) or the path of a local .gguf file`,
  'not-a-file': 'pass the path of the .gguf file itself',
  'digest-mismatch': 'check that this is the file you meant, or give its new digest with --model-sha256',
  'invalid-expected-digest': 'give the 64 hex characters that sha256sum prints',
  'invalid-pins-file': 'restore the pins file, or delete it so the next start pins the model files as they are',
}

function modelFailure(error: ModelRejectedError, fix?: string): CheckResult {
  return {
    name: 'model',
    status: 'fail',
    summary: error.message,
    fix: fix ?? MODEL_FIXES[error.reason] ?? 'download or convert the model file again (see the message above)',
  }
}

/** The model the node would serve: present, a valid GGUF, and with the digest pinned or expected for it. */
export async function checkModel(spec: string, dataDir: string, expectedSha256?: string): Promise<CheckResult> {
  try {
    const { model, expectedSha256: expected } = parseModelSpec(spec, expectedSha256)
    if (model === LULL_TINY_MODEL_ID) return await checkBuiltInModel(dataDir, expected)
    if (isHfUri(model)) return await checkDownloadedModel(model, dataDir, expected)
    const path = resolve(model)
    await checkModelFile(path)
    const summary = await validateGgufFile(path)
    const sha256 = await sha256File(path)
    if (expected !== undefined && sha256 !== expected) {
      return modelFailure(
        new ModelRejectedError('digest-mismatch', `${path} has SHA-256 ${sha256}, but ${expected} was expected`),
      )
    }
    const pin = (await readPins(dataDir)).get(path)
    if (expected === undefined && pin !== undefined && pin.sha256 !== sha256) {
      return modelFailure(
        new ModelRejectedError(
          'changed-since-pinned',
          `${path} changed since it was pinned: SHA-256 ${pin.sha256} then (${pin.pinnedAt}), ${sha256} now`,
        ),
        `if you replaced it on purpose, start with --model-sha256 ${sha256} to pin the new file; otherwise restore the original`,
      )
    }
    const pinText =
      pin === undefined ? 'not pinned yet: the first start pins it' : `matches its pin from ${pin.pinnedAt}`
    return {
      name: 'model',
      status: 'ok',
      summary: `${path}: GGUF v${summary.version} ${summary.architecture}, ${formatGib(summary.fileSizeBytes)}, SHA-256 ${sha256.slice(0, 16)}…, ${pinText}`,
    }
  } catch (error) {
    if (error instanceof ModelRejectedError) return modelFailure(error)
    throw error
  }
}

/** An `hf:` model: checked when a copy was downloaded (its pin and GGUF), otherwise the first start fetches it. */
async function checkDownloadedModel(spec: string, dataDir: string, expected: string | undefined): Promise<CheckResult> {
  let uri: ReturnType<typeof parseHfUri>
  try {
    uri = parseHfUri(spec)
  } catch (error) {
    return {
      name: 'model',
      status: 'fail',
      summary: (error as Error).message,
      fix: 'write hf:<user>/<repo>/<file>.gguf or hf:<user>/<repo>:<quantisation>',
    }
  }
  const pin = (await readPins(dataDir)).get(uri.canonical)
  const sha256 = expected ?? pin?.sha256
  const path = sha256 === undefined ? undefined : storedModelPath(dataDir, sha256)
  if (sha256 === undefined || path === undefined || !(await isReadableFile(path))) {
    return {
      name: 'model',
      status: 'ok',
      summary: `${uri.canonical}: not downloaded into ${dataDir} yet; the first start (or lull-node models pull) fetches, verifies and pins it`,
    }
  }
  const summary = await validateGgufFile(path)
  const actual = await sha256File(path)
  if (actual !== sha256) {
    return modelFailure(
      new ModelRejectedError(
        'changed-since-pinned',
        `the downloaded copy ${path} has SHA-256 ${actual}, not ${sha256}`,
      ),
      `delete ${path}; the next start downloads it again`,
    )
  }
  return {
    name: 'model',
    status: 'ok',
    summary: `${uri.canonical}: downloaded, GGUF v${summary.version} ${summary.architecture}, ${formatGib(summary.fileSizeBytes)}, SHA-256 ${sha256.slice(0, 16)}…${pin === undefined ? '' : ` as pinned ${pin.pinnedAt}`}`,
  }
}

async function isReadableFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

async function checkBuiltInModel(dataDir: string, expected: string | undefined): Promise<CheckResult> {
  const bytes = buildLullTinyGguf()
  const built = sha256Bytes(bytes)
  if (expected !== undefined && expected !== built) {
    return modelFailure(
      new ModelRejectedError('digest-mismatch', `${LULL_TINY_MODEL_ID} builds to SHA-256 ${built}, not ${expected}`),
      `drop --model-sha256, or give ${built}`,
    )
  }
  const path = resolve(dataDir, 'models', `${LULL_TINY_MODEL_ID}.gguf`)
  let onDisk: string | undefined
  try {
    onDisk = await sha256File(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const size = `${(bytes.length / 1024 ** 2).toFixed(1)} MiB`
  if (onDisk === undefined) {
    return {
      name: 'model',
      status: 'ok',
      summary: `${LULL_TINY_MODEL_ID} (built in, ${size}): generated at first start`,
    }
  }
  if (onDisk !== built) {
    return {
      name: 'model',
      status: 'warn',
      summary: `${path} differs from a fresh ${LULL_TINY_MODEL_ID} build (SHA-256 ${onDisk.slice(0, 16)}…)`,
      fix: 'nothing to do: the next start writes it again',
    }
  }
  return {
    name: 'model',
    status: 'ok',
    summary: `${LULL_TINY_MODEL_ID} (built in, ${size}) at ${path}, SHA-256 ${built.slice(0, 16)}… as built`,
  }
}
