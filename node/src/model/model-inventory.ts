/**
 * What models a data directory holds, for `lull-node models list` and `models rm`: the built-in lull-tiny if it was
 * generated, every pinned model (local files by absolute path, downloads by `hf:` URI) with its stored copy, and
 * downloads still in progress.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { readStatusFile } from '../node-status.js'
import { sha256File } from './file-digest.js'
import { isHfUri, parseHfUri } from './hf-uri.js'
import { LULL_TINY_FILE_NAME, LULL_TINY_MODEL_ID } from './lull-tiny.js'
import { downloadsDirectory, partialPath, removePartial } from './model-download.js'
import { readPins, writePins } from './model-pins.js'
import { pruneStore, storedModelPath } from './model-store.js'

export interface ModelEntry {
  /** What to pass as `--model`: lull-tiny, an absolute path, or an `hf:` URI. */
  source: string
  /** The file the node loads (for pinned models, its private copy in the store). */
  path: string
  sizeBytes: number
  /** Lowercase hex; undefined for a download still in progress. */
  sha256: string | undefined
  /** Pinned by SHA-256 (lull-tiny: built in, its digest is that of the node's own build). */
  pinned: boolean
  /** `ready`: the file is there; `missing`: pinned, but its copy is gone (pull again); `partial`: a download to resume. */
  state: 'ready' | 'missing' | 'partial'
  /** For a partial download, bytes of the whole (when the server said). */
  totalBytes?: number
}

async function sizeIfFile(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path)
    return info.isFile() ? info.size : undefined
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** Every model in `dataDir`, lull-tiny first, then pinned models by source, then partial downloads. */
export async function listModels(dataDir: string): Promise<ModelEntry[]> {
  const entries: ModelEntry[] = []
  const tinyPath = join(dataDir, 'models', LULL_TINY_FILE_NAME)
  const tinySize = await sizeIfFile(tinyPath)
  if (tinySize !== undefined) {
    entries.push({
      source: LULL_TINY_MODEL_ID,
      path: tinyPath,
      sizeBytes: tinySize,
      sha256: await sha256File(tinyPath),
      pinned: true,
      state: 'ready',
    })
  }
  const pins = await readPins(dataDir)
  const pinnedKeys = new Set(pins.keys())
  for (const [source, pin] of [...pins].sort(([a], [b]) => a.localeCompare(b))) {
    const path = storedModelPath(dataDir, pin.sha256)
    const size = await sizeIfFile(path)
    entries.push({
      source,
      path,
      sizeBytes: size ?? pin.sizeBytes,
      sha256: pin.sha256,
      pinned: true,
      state: size === undefined ? 'missing' : 'ready',
    })
  }
  let names: string[] = []
  try {
    names = await readdir(downloadsDirectory(dataDir))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  for (const name of names.filter((entry) => entry.endsWith('.partial.json')).sort()) {
    const metadataPath = join(downloadsDirectory(dataDir), name)
    const meta = JSON.parse(await readFile(metadataPath, 'utf8').catch(() => '{}')) as {
      key?: unknown
      totalBytes?: unknown
    }
    if (typeof meta.key !== 'string' || pinnedKeys.has(meta.key)) continue
    const path = metadataPath.slice(0, -'.json'.length)
    entries.push({
      source: meta.key,
      path,
      sizeBytes: (await sizeIfFile(path)) ?? 0,
      sha256: undefined,
      pinned: false,
      state: 'partial',
      ...(typeof meta.totalBytes === 'number' ? { totalBytes: meta.totalBytes } : {}),
    })
  }
  return entries
}

/** How a name given to `models rm` matches a source: exactly, an `hf:` URI in canonical form, or a path. */
function sourceKey(name: string): string {
  if (name === LULL_TINY_MODEL_ID) return name
  if (isHfUri(name)) return parseHfUri(name).canonical
  return resolve(name)
}

export interface RemoveResult {
  source: string
  /** Files deleted (the stored copy, the generated lull-tiny file, a partial download). */
  removedFiles: string[]
  /** The pin was forgotten. */
  unpinned: boolean
  /** A node running with this data dir serves this model (only with `force`): it keeps serving until it stops. */
  inUseByRunningNode: boolean
}

/** `models rm` found nothing by that name. */
export class ModelNotFoundError extends Error {
  constructor(readonly source: string) {
    super(`No model '${source}' in this data dir. 'lull-node models list' shows what there is.`)
    this.name = 'ModelNotFoundError'
  }
}

/** `models rm` of a model that a node running with this data dir serves, without `force`. */
export class ModelInUseError extends Error {
  constructor(
    readonly source: string,
    readonly pid: number,
  ) {
    super(
      `The node running with this data dir (pid ${pid}) serves '${source}'. Stop that node first, or pass --force: the running node then keeps serving its copy until it stops, and will not start with this model again until it is pulled again.`,
    )
    this.name = 'ModelInUseError'
  }
}

/**
 * Removes a model from `dataDir`: its pin, its stored copy (unless another pin shares the bytes), and any partial
 * download. A model that a node running with this data dir serves is refused unless `force`.
 */
export async function removeModel(
  dataDir: string,
  name: string,
  options: { force?: boolean } = {},
): Promise<RemoveResult> {
  const source = sourceKey(name)
  const pins = await readPins(dataDir)
  const pin = pins.get(source)
  const tinyPath = join(dataDir, 'models', LULL_TINY_FILE_NAME)
  const isTiny = source === LULL_TINY_MODEL_ID
  const partial = isHfUri(source) ? partialPath(dataDir, source) : undefined
  const exists =
    pin !== undefined ||
    (isTiny && (await sizeIfFile(tinyPath)) !== undefined) ||
    (partial !== undefined && (await sizeIfFile(`${partial}.json`)) !== undefined)
  if (!exists) throw new ModelNotFoundError(source)

  const digest = isTiny ? await sha256File(tinyPath).catch(() => undefined) : pin?.sha256
  const status = await readStatusFile(dataDir)
  const inUse =
    status.kind === 'found' && status.running && digest !== undefined && status.report.model.sha256 === digest
  if (inUse && status.kind === 'found' && options.force !== true) throw new ModelInUseError(source, status.report.pid)

  const removedFiles: string[] = []
  if (pin !== undefined) {
    pins.delete(source)
    await writePins(dataDir, pins)
    const stored = storedModelPath(dataDir, pin.sha256)
    const stillReferenced = [...pins.values()].some((other) => other.sha256 === pin.sha256)
    if (!stillReferenced && (await sizeIfFile(stored)) !== undefined) {
      await rm(stored, { force: true })
      removedFiles.push(stored)
    }
    await pruneStore(dataDir, new Set([...pins.values()].map((entry) => entry.sha256)))
  }
  if (isTiny && (await sizeIfFile(tinyPath)) !== undefined) {
    await rm(tinyPath, { force: true })
    removedFiles.push(tinyPath)
  }
  if (partial !== undefined && (await sizeIfFile(`${partial}.json`)) !== undefined) {
    if ((await sizeIfFile(partial)) !== undefined) removedFiles.push(partial)
    await removePartial(dataDir, source)
  }
  return { source, removedFiles, unpinned: pin !== undefined, inUseByRunningNode: inUse }
}
