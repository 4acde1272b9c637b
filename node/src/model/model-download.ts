/**
 * Resumable model downloads into `<dataDir>/models/downloads/`. Bytes go to `<key>.partial`, with what is known about
 * the remote file (URL, size, ETag) beside it in `<key>.partial.json`. A transfer that stops part way keeps what
 * arrived; the next download of the same URL asks only for the rest (`Range: bytes=<have>-`, with `If-Range` so a
 * file changed upstream meanwhile starts over instead of being spliced). A finished download is hashed and handed to
 * the caller, who moves it into the content-addressed store.
 */
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { acquireDownloadLock } from './download-lock.js'
import { ModelDownloadError } from './errors.js'
import { networkCause, unreachable } from './hf-uri.js'

/** Automatic resumes of a transfer that stops part way, before the download gives up (and can be run again). */
export const DEFAULT_DOWNLOAD_RETRIES = 3
/** Pause before the first automatic resume; doubled for each further one. */
export const DOWNLOAD_RETRY_DELAY_MS = 1_000
/** A transfer that delivers nothing for this long is treated as stopped. */
export const DOWNLOAD_STALL_TIMEOUT_MS = 60_000
const PROGRESS_INTERVAL_BYTES = 256 * 1024

export interface DownloadProgress {
  downloadedBytes: number
  /** Undefined while the server has not said. */
  totalBytes: number | undefined
  /** Bytes already on disk from an earlier, interrupted transfer, when this one resumed. */
  resumedFromBytes: number
}

export interface DownloadOptions {
  /** Request headers (for example an `authorization` for gated repositories). */
  headers?: Record<string, string>
  /** @default DEFAULT_DOWNLOAD_RETRIES */
  retries?: number
  /** @default DOWNLOAD_RETRY_DELAY_MS */
  retryDelayMs?: number
  onProgress?: (progress: DownloadProgress) => void
  signal?: AbortSignal | undefined
}

export interface DownloadedFile {
  path: string
  sha256: string
  sizeBytes: number
  /** How many bytes came from an earlier, interrupted transfer. */
  resumedFromBytes: number
}

interface PartialMetadata {
  url: string
  /** The model URI the download is for (shown by `models list`). */
  key: string
  totalBytes?: number
  etag?: string
  lastModified?: string
}

export function downloadsDirectory(dataDir: string): string {
  return join(dataDir, 'models', 'downloads')
}

/** The partial file for a download key (a canonical model URI), with a file name safe on every OS. */
export function partialPath(dataDir: string, key: string): string {
  const safe = key.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 150)
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 12)
  return join(downloadsDirectory(dataDir), `${safe}.${digest}.partial`)
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw error
  }
}

async function readMetadata(path: string): Promise<PartialMetadata | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<PartialMetadata>
    return typeof parsed.url === 'string' ? (parsed as PartialMetadata) : undefined
  } catch {
    return undefined
  }
}

/** `bytes <start>-<end>/<total>` → start and total. */
function parseContentRange(header: string | null): { start: number; total: number | undefined } | undefined {
  const match = header === null ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim())
  if (!match) return undefined
  return { start: Number(match[1]), total: match[3] === '*' ? undefined : Number(match[3]) }
}

function httpError(url: string, status: number, key: string): ModelDownloadError {
  if (status === 404) {
    return new ModelDownloadError(
      'not-found',
      `${key} was not found (HTTP 404 from ${new URL(url).host}). Check the user, repository, file name and branch.`,
    )
  }
  if (status === 401 || status === 403) {
    return new ModelDownloadError(
      'http-error',
      `${key} needs access (HTTP ${status}): accept the model's terms on the Hub and set HF_TOKEN to an access token.`,
    )
  }
  return new ModelDownloadError(
    'http-error',
    `${new URL(url).host} answered HTTP ${status} for ${key}; try again later.`,
  )
}

async function hashFile(path: string, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024, signal })) hash.update(chunk)
  return hash.digest('hex')
}

/** One HTTP transfer: appends to the partial file from what it already holds. Returns when the file is complete. */
async function transferOnce(
  url: string,
  key: string,
  path: string,
  metadataPath: string,
  options: DownloadOptions,
): Promise<{ totalBytes: number; resumedFromBytes: number }> {
  const metadata = await readMetadata(metadataPath)
  let have = metadata?.url === url ? await sizeOf(path) : 0
  if (have > 0 && metadata?.totalBytes !== undefined && have === metadata.totalBytes) {
    return { totalBytes: have, resumedFromBytes: have }
  }
  const headers: Record<string, string> = { ...options.headers }
  const validator = metadata?.etag ?? metadata?.lastModified
  if (have > 0) {
    headers.range = `bytes=${have}-`
    if (validator !== undefined) headers['if-range'] = validator
  }
  const stall = new AbortController()
  let stallTimer = setTimeout(() => stall.abort(), DOWNLOAD_STALL_TIMEOUT_MS)
  const signal = AbortSignal.any([stall.signal, ...(options.signal === undefined ? [] : [options.signal])])
  let response: Response
  try {
    response = await fetch(url, { headers, signal, redirect: 'follow' })
  } catch (error) {
    clearTimeout(stallTimer)
    options.signal?.throwIfAborted()
    throw unreachable(url, error)
  }
  try {
    let append = false
    let total: number | undefined
    if (response.status === 206 && have > 0) {
      const range = parseContentRange(response.headers.get('content-range'))
      if (range === undefined || range.start !== have) {
        throw new ModelDownloadError('http-error', `${new URL(url).host} answered a resume with the wrong byte range.`)
      }
      append = true
      total = range.total
    } else if (response.status === 416 && have > 0) {
      // Asked for bytes past the end: what we have may be everything, or the file changed. Start over to know.
      await response.body?.cancel()
      await rm(path, { force: true })
      await rm(metadataPath, { force: true })
      return transferOnce(url, key, path, metadataPath, options)
    } else if (response.status === 200) {
      const length = response.headers.get('content-length')
      total = length === null ? undefined : Number(length)
      have = 0
    } else {
      throw httpError(url, response.status, key)
    }
    const resumedFromBytes = have
    const next: PartialMetadata = { url, key }
    if (total !== undefined) next.totalBytes = total
    const etag = response.headers.get('etag')
    const lastModified = response.headers.get('last-modified')
    if (etag !== null && !etag.startsWith('W/')) next.etag = etag
    else if (lastModified !== null) next.lastModified = lastModified
    await writeFile(metadataPath, `${JSON.stringify(next)}\n`)
    if (response.body === null) throw new ModelDownloadError('http-error', `${new URL(url).host} sent no body.`)

    let downloaded = have
    let reported = have
    options.onProgress?.({ downloadedBytes: downloaded, totalBytes: total, resumedFromBytes })
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        clearTimeout(stallTimer)
        stallTimer = setTimeout(() => stall.abort(), DOWNLOAD_STALL_TIMEOUT_MS)
        downloaded += chunk.length
        if (downloaded - reported >= PROGRESS_INTERVAL_BYTES) {
          reported = downloaded
          options.onProgress?.({ downloadedBytes: downloaded, totalBytes: total, resumedFromBytes })
        }
        callback(null, chunk)
      },
    })
    try {
      await pipeline(
        Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>),
        counter,
        createWriteStream(path, { flags: append ? 'a' : 'w', mode: 0o600 }),
      )
    } catch (error) {
      options.signal?.throwIfAborted()
      const kept = await sizeOf(path)
      throw new ModelDownloadError(
        'interrupted',
        `The download of ${key} stopped at ${kept} of ${total ?? 'unknown'} bytes (${stall.signal.aborted ? 'no data for a while' : networkCause(error)}). What arrived is kept in ${path}: run the same command again to resume from there.`,
        { cause: error },
      )
    }
    if (total !== undefined && downloaded !== total) {
      throw new ModelDownloadError(
        'interrupted',
        `The download of ${key} ended at ${downloaded} of ${total} bytes. What arrived is kept in ${path}: run the same command again to resume from there.`,
      )
    }
    options.onProgress?.({ downloadedBytes: downloaded, totalBytes: downloaded, resumedFromBytes })
    return { totalBytes: downloaded, resumedFromBytes }
  } finally {
    clearTimeout(stallTimer)
  }
}

/**
 * Downloads `url` to the partial file for `key`, resuming from what an earlier transfer left there, and retrying a
 * transfer that stops part way up to `retries` times. Returns the complete file (still at its partial path) and its
 * SHA-256; the caller moves it into the store. Throws {@link ModelDownloadError}: `unreachable` when the server
 * cannot be reached, `interrupted` when the transfer kept stopping (what arrived is kept for the next attempt).
 */
export async function downloadModelFile(
  url: string,
  key: string,
  dataDir: string,
  options: DownloadOptions = {},
): Promise<DownloadedFile> {
  const path = partialPath(dataDir, key)
  const metadataPath = `${path}.json`
  await mkdir(downloadsDirectory(dataDir), { recursive: true })
  const release = await acquireDownloadLock(`${path}.lock`, key)
  try {
    return await downloadWithRetries(url, key, path, metadataPath, options)
  } finally {
    await release()
  }
}

async function downloadWithRetries(
  url: string,
  key: string,
  path: string,
  metadataPath: string,
  options: DownloadOptions,
): Promise<DownloadedFile> {
  const retries = options.retries ?? DEFAULT_DOWNLOAD_RETRIES
  let delayMs = options.retryDelayMs ?? DOWNLOAD_RETRY_DELAY_MS
  // What an earlier command left: the first transfer's starting point.
  let firstResumedFrom: number | undefined
  const tracked: DownloadOptions = {
    ...options,
    onProgress: (progress) => {
      firstResumedFrom ??= progress.resumedFromBytes
      options.onProgress?.(progress)
    },
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const { totalBytes, resumedFromBytes } = await transferOnce(url, key, path, metadataPath, tracked)
      const sha256 = await hashFile(path, options.signal)
      return { path, sha256, sizeBytes: totalBytes, resumedFromBytes: firstResumedFrom ?? resumedFromBytes }
    } catch (error) {
      if (!(error instanceof ModelDownloadError) || error.reason !== 'interrupted' || attempt >= retries) throw error
      await sleep(delayMs, undefined, options.signal === undefined ? {} : { signal: options.signal })
      delayMs *= 2
    }
  }
}

/** Forgets a finished or abandoned download (its partial file and metadata). */
export async function removePartial(dataDir: string, key: string): Promise<void> {
  const path = partialPath(dataDir, key)
  await rm(path, { force: true })
  await rm(`${path}.json`, { force: true })
}
