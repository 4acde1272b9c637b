import { open, stat } from 'node:fs/promises'
import { basename, extname, resolve } from 'node:path'
import { sha256File } from './file-digest.js'
import { ensureLullTinyModel, LULL_TINY_MODEL_ID, type ResolvedModel } from './lull-tiny.js'

const GGUF_MAGIC_BYTES = Buffer.from('GGUF', 'ascii')

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
 * Turns a model spec into a file on this machine: `lull-tiny` (generated under `<dataDir>/models`) or a
 * path to a local `.gguf` file, whose id is its file name without the extension.
 */
export async function resolveModel(
  spec: string,
  dataDir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ResolvedModel> {
  if (spec === LULL_TINY_MODEL_ID) return ensureLullTinyModel(dataDir, options)

  const path = resolve(spec)
  let head: Buffer
  try {
    head = await readHead(path, GGUF_MAGIC_BYTES.length)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new Error(
        `Model file not found: ${path}. Pass '${LULL_TINY_MODEL_ID}' for the built-in model, or the path of a local .gguf file.`,
      )
    }
    if (code === 'EISDIR') throw new Error(`Model path is a directory: ${path}. Pass the path of a .gguf file in it.`)
    throw error
  }
  if (!head.equals(GGUF_MAGIC_BYTES)) {
    throw new Error(
      `Not a GGUF model file: ${path} (it does not start with 'GGUF'). Convert the model to GGUF (for example with llama.cpp's convert_hf_to_gguf.py) or pass '${LULL_TINY_MODEL_ID}'.`,
    )
  }
  const [sha256, { size }] = await Promise.all([sha256File(path, options), stat(path)])
  return { id: basename(path, extname(path)), path, sha256, sizeBytes: size }
}
