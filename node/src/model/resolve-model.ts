import { open, stat } from 'node:fs/promises'
import { basename, extname, resolve } from 'node:path'
import { ModelRejectedError } from './errors.js'
import { sha256File } from './file-digest.js'
import { ensureLullTinyModel, LULL_TINY_MODEL_ID, type ResolvedModel } from './lull-tiny.js'

const GGUF_MAGIC_BYTES = Buffer.from('GGUF', 'ascii')
const SHA256_HEX = /^[0-9a-f]{64}$/i
/** `<model>@sha256:<digest>`: a model spec that also names the digest the file must have. */
const DIGEST_SUFFIX = /@sha256:([^@]*)$/

/** A model spec split into the model (`lull-tiny` or a path) and the digest the operator expects, if any. */
export interface ModelSpec {
  model: string
  /** Lowercase hex. */
  expectedSha256: string | undefined
}

function normalizeDigest(digest: string, from: string): string {
  if (!SHA256_HEX.test(digest)) {
    throw new ModelRejectedError(
      'invalid-expected-digest',
      `The expected model digest ${JSON.stringify(digest.slice(0, 80))} (${from}) is not a SHA-256: give 64 hex characters, as printed by 'sha256sum <file>'.`,
    )
  }
  return digest.toLowerCase()
}

/**
 * Splits `spec` (`lull-tiny`, a path, or either followed by `@sha256:<64 hex>`) and merges the digest with
 * `expectedSha256` (for example from `--model-sha256`); two different digests are refused.
 */
export function parseModelSpec(spec: string, expectedSha256?: string): ModelSpec {
  const match = DIGEST_SUFFIX.exec(spec)
  const model = match ? spec.slice(0, match.index) : spec
  const fromSpec = match ? normalizeDigest(match[1] ?? '', `after @sha256: in '${spec}'`) : undefined
  const fromOption = expectedSha256 === undefined ? undefined : normalizeDigest(expectedSha256, 'the expected digest')
  if (fromSpec !== undefined && fromOption !== undefined && fromSpec !== fromOption) {
    throw new ModelRejectedError(
      'invalid-expected-digest',
      `Two different expected digests were given for the model (${fromSpec} in the model spec, ${fromOption} as an option); give one.`,
    )
  }
  return { model, expectedSha256: fromSpec ?? fromOption }
}

/** Reads the first bytes of a file; fewer if the file is shorter. */
async function readHead(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(length)
    const { bytesRead } = await handle.read(buffer, 0, length, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/**
 * Checks that `path` is a regular file starting with the GGUF magic; throws {@link ModelRejectedError}
 * (`not-found`, `not-a-file`, `not-gguf`) with a message saying what to pass instead.
 */
export async function checkModelFile(path: string): Promise<void> {
  let head: Buffer
  try {
    const info = await stat(path)
    if (info.isDirectory()) {
      throw new ModelRejectedError(
        'not-a-file',
        `Model path is a directory: ${path}. Pass the path of a .gguf file in it.`,
      )
    }
    if (!info.isFile()) throw new ModelRejectedError('not-a-file', `Model path is not a regular file: ${path}.`)
    head = await readHead(path, GGUF_MAGIC_BYTES.length)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new ModelRejectedError(
        'not-found',
        `Model file not found: ${path}. Pass '${LULL_TINY_MODEL_ID}' for the built-in model, the path of a local .gguf file, or an hf: URI (hf:<user>/<repo>/<file>.gguf).`,
      )
    }
    throw error
  }
  if (!head.equals(GGUF_MAGIC_BYTES)) {
    throw new ModelRejectedError(
      'not-gguf',
      `Not a GGUF model file: ${path} (it does not start with 'GGUF'). Convert the model to GGUF (for example with llama.cpp's convert_hf_to_gguf.py) or pass '${LULL_TINY_MODEL_ID}'.`,
    )
  }
}

/** The refusal for a file whose digest is not the one the operator asked for. */
export function digestMismatch(path: string, actual: string, expected: string): ModelRejectedError {
  return new ModelRejectedError(
    'digest-mismatch',
    `Model file ${path} has SHA-256 ${actual}, but ${expected} was expected. Check that this is the file you meant, or download it again; if the expected digest is out of date, give the new one.`,
  )
}

/**
 * Turns a model spec into a file on this machine: `lull-tiny` (generated under `<dataDir>/models`) or a
 * path to a local `.gguf` file, whose id is its file name without the extension. A spec ending in
 * `@sha256:<hex>`, or `options.expectedSha256`, makes a file with another digest be refused.
 *
 * This only locates and hashes the file; {@link prepareModel} also validates, pins and trial-loads it.
 */
export async function resolveModel(
  spec: string,
  dataDir: string,
  options: { signal?: AbortSignal | undefined; expectedSha256?: string | undefined } = {},
): Promise<ResolvedModel> {
  const { model, expectedSha256 } = parseModelSpec(spec, options.expectedSha256)
  const signal = options.signal
  let resolved: ResolvedModel
  if (model === LULL_TINY_MODEL_ID) {
    resolved = await ensureLullTinyModel(dataDir, signal === undefined ? {} : { signal })
  } else {
    const path = resolve(model)
    await checkModelFile(path)
    const [sha256, { size }] = await Promise.all([sha256File(path, { signal }), stat(path)])
    resolved = { id: basename(path, extname(path)), path, sha256, sizeBytes: size }
  }
  if (expectedSha256 !== undefined && resolved.sha256 !== expectedSha256) {
    throw digestMismatch(resolved.path, resolved.sha256, expectedSha256)
  }
  return resolved
}
