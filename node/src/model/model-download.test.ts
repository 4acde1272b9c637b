import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ModelDownloadError } from './errors.js'
import { downloadModelFile, downloadsDirectory, partialPath } from './model-download.js'

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

describe('resumable model downloads', () => {
  let file = randomBytes(3 * 1024 * 1024)
  let cutAfter: number | undefined
  const ranges: (string | undefined)[] = []
  let server: Server
  let url: string
  let dataDir: string

  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url !== '/model.gguf') {
        response.writeHead(404).end()
        return
      }
      ranges.push(request.headers.range)
      const etag = `"${sha256(file).slice(0, 12)}"`
      const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '')
      const ifRange = request.headers['if-range']
      // As HTTP servers do: a Range is honoured unless an If-Range names another version.
      if (range && (ifRange === undefined || ifRange === etag)) {
        const start = Number(range[1])
        response.writeHead(206, {
          etag,
          'content-length': file.length - start,
          'content-range': `bytes ${start}-${file.length - 1}/${file.length}`,
        })
        response.end(file.subarray(start))
        return
      }
      response.writeHead(200, { etag, 'content-length': file.length })
      if (cutAfter === undefined) {
        response.end(file)
        return
      }
      const cut = cutAfter
      cutAfter = undefined
      response.write(file.subarray(0, cut), () => setTimeout(() => response.destroy(), 20))
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.gguf`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((done) => server.close(done))
  })
  afterEach(async () => {
    ranges.length = 0
    cutAfter = undefined
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true })
  })

  const freshDataDir = async (): Promise<string> => {
    dataDir = await mkdtemp(join(tmpdir(), 'lull-download-'))
    return dataDir
  }

  it('resumes a cut transfer by itself when retries are allowed', async () => {
    const dir = await freshDataDir()
    cutAfter = 1024 * 1024
    const result = await downloadModelFile(url, 'test:model', dir, { retries: 1, retryDelayMs: 1 })
    expect(result.sha256).toBe(sha256(file))
    expect(ranges).toHaveLength(2)
    expect(ranges[0]).toBeUndefined()
    expect(ranges[1]).toMatch(/^bytes=\d+-$/)
    expect(Number(ranges[1]!.slice(6, -1))).toBeGreaterThan(0)
  })

  it('starts over, instead of splicing two versions, when the file changed between the cut and the resume', async () => {
    const dir = await freshDataDir()
    cutAfter = 1024 * 1024
    await expect(downloadModelFile(url, 'test:model', dir, { retries: 0 })).rejects.toMatchObject({
      reason: 'interrupted',
    })
    const before = file
    file = randomBytes(3 * 1024 * 1024)
    try {
      const progress: number[] = []
      const result = await downloadModelFile(url, 'test:model', dir, {
        retries: 0,
        onProgress: (status) => progress.push(status.resumedFromBytes),
      })
      expect(ranges[1]).toMatch(/^bytes=\d+-$/) // it asked to resume, with If-Range ...
      expect(result.sha256).toBe(sha256(file)) // ... and got the whole new file instead
      expect(result.resumedFromBytes).toBe(0)
      expect(new Set(progress)).toEqual(new Set([0]))
    } finally {
      file = before
    }
  })

  it('lets one download of a model run at a time in a data dir, and takes over a lock left by a dead process', async () => {
    const dir = await freshDataDir()
    const outcomes = await Promise.allSettled([
      downloadModelFile(url, 'test:model', dir),
      downloadModelFile(url, 'test:model', dir),
    ])
    const done = outcomes.filter((outcome) => outcome.status === 'fulfilled')
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected')
    expect(done).toHaveLength(1)
    expect(refused).toHaveLength(1)
    expect(refused[0]!.reason).toMatchObject({ reason: 'busy' })
    expect(String(refused[0]!.reason.message)).toContain(`(pid ${process.pid}) is downloading test:model`)

    await rm(join(downloadsDirectory(dir)), { recursive: true })
    await mkdir(downloadsDirectory(dir), { recursive: true })
    await writeFile(`${partialPath(dir, 'test:model')}.lock`, '2147483646') // no such process
    await expect(downloadModelFile(url, 'test:model', dir)).resolves.toMatchObject({ sha256: sha256(file) })
  })

  it('says a missing file was not found, and leaves nothing behind', async () => {
    const dir = await freshDataDir()
    const error = await downloadModelFile(url.replace('model.gguf', 'other.gguf'), 'hf:a/b/other.gguf', dir).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ModelDownloadError)
    expect((error as ModelDownloadError).reason).toBe('not-found')
    expect((error as Error).message).toContain('hf:a/b/other.gguf was not found (HTTP 404')
    expect(await readdir(downloadsDirectory(dir))).toEqual([])
  })
})
