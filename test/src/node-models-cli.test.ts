/**
 * `lull-node models` and `lull-node bench` through the real CLI. A local HTTP server on 127.0.0.1 stands in for the
 * Hugging Face Hub (HF_ENDPOINT points the node at it): it serves the lull-tiny GGUF at the Hub's URL layout
 * (`/<user>/<repo>/resolve/<branch>/<file>`, the manifest API for tags), honours Range and If-Range like the Hub's
 * CDN, and can cut a transfer part way.
 */
import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { buildLullTinyGguf } from '@lull/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..', '..')
const NODE = join(ROOT, 'node/dist/bin.cjs')
const FILE_URI = 'hf:lull/tiny-GGUF/lull-tiny.gguf'

async function lullNode(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [NODE, ...args], {
      env: { ...process.env, ...env },
      timeout: 90_000,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

interface ModelEntryJson {
  source: string
  path: string
  sizeBytes: number
  sha256?: string
  pinned: boolean
  state: string
}

/** A stand-in for the Hub: files by path, a manifest for one tag, Range and If-Range, and a one-shot cut. */
class FakeHub {
  readonly files = new Map<string, Buffer>()
  readonly requests: { path: string; range: string | undefined }[] = []
  /** The next full (non-range) download sends the full length in its headers, then only this many bytes. */
  cutNextAfterBytes: number | undefined
  readonly server: Server

  constructor() {
    this.server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://hub')
      this.requests.push({ path: url.pathname, range: request.headers.range })
      if (url.pathname === '/v2/lull/tiny-GGUF/manifests/Q8_0') {
        response.writeHead(200, { 'content-type': 'application/json' })
        response.end(JSON.stringify({ ggufFile: { rfilename: 'lull-tiny.Q8_0.gguf' } }))
        return
      }
      const match = /^\/lull\/tiny-GGUF\/resolve\/main\/(.+)$/.exec(url.pathname)
      const bytes = match ? this.files.get(decodeURIComponent(match[1]!)) : undefined
      if (bytes === undefined) {
        response.writeHead(404).end('Entry not found')
        return
      }
      const etag = `"${sha256(bytes).slice(0, 16)}"`
      const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '')
      const ifRange = request.headers['if-range']
      const headers = { etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' }
      if (range && (ifRange === undefined || ifRange === etag)) {
        const start = Number(range[1])
        if (start >= bytes.length) {
          response.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end()
          return
        }
        response.writeHead(206, {
          ...headers,
          'content-length': bytes.length - start,
          'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`,
        })
        response.end(bytes.subarray(start))
        return
      }
      response.writeHead(200, { ...headers, 'content-length': bytes.length })
      const cut = this.cutNextAfterBytes
      if (cut === undefined) {
        response.end(bytes)
        return
      }
      this.cutNextAfterBytes = undefined
      response.write(bytes.subarray(0, cut), () => setTimeout(() => response.destroy(), 20))
    })
  }

  async start(): Promise<string> {
    await new Promise<void>((done) => this.server.listen(0, '127.0.0.1', done))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((done) => this.server.close(done))
  }
}

const tiny = buildLullTinyGguf()
const hub = new FakeHub()
/** Points the CLI at the local hub. */
let env: NodeJS.ProcessEnv

beforeAll(async () => {
  hub.files.set('lull-tiny.gguf', tiny)
  hub.files.set('lull-tiny.Q8_0.gguf', tiny)
  hub.files.set('broken.gguf', tiny.subarray(0, 100_000))
  env = { HF_ENDPOINT: await hub.start(), MODEL_ENDPOINT: '' }
})
afterAll(async () => {
  await hub.stop()
})

describe('lull-node models with hf: downloads from a local hub', () => {
  // The same model with one weight changed: a valid GGUF with other bytes, as if republished upstream.
  const changed = Buffer.from(tiny)
  changed[changed.length - 1] = 0x01
  let dataDir: string

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lull-models-cli-'))
  })
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  const list = async (): Promise<ModelEntryJson[]> => {
    const { code, stdout } = await lullNode(['models', 'list', '--json', '--data-dir', dataDir], env)
    expect(code).toBe(0)
    return JSON.parse(stdout) as ModelEntryJson[]
  }

  it('downloads with progress, keeps what arrived when the connection is cut, and resumes with a Range request', async () => {
    hub.cutNextAfterBytes = 2_000_000
    const first = await lullNode(['models', 'pull', FILE_URI, '--retries', '0', '--data-dir', dataDir], env)
    expect(first.code).toBe(1)
    expect(first.stderr).toMatch(
      new RegExp(`stopped at \\d+ of ${tiny.length} bytes .*run the same command again to resume`),
    )
    const partial = (await list()).find((entry) => entry.source === FILE_URI)
    expect(partial).toMatchObject({ state: 'partial', pinned: false })
    expect(partial!.sizeBytes).toBeGreaterThan(0)
    expect(partial!.sizeBytes).toBeLessThan(tiny.length)

    hub.requests.length = 0
    const second = await lullNode(['models', 'pull', FILE_URI, '--json', '--data-dir', dataDir], env)
    expect(second.code).toBe(0)
    expect(hub.requests.filter((request) => request.path.endsWith('.gguf'))).toEqual([
      { path: '/lull/tiny-GGUF/resolve/main/lull-tiny.gguf', range: `bytes=${partial!.sizeBytes}-` },
    ])
    const result = JSON.parse(second.stdout) as { sha256: string; pin: string; download: { resumedFromBytes: number } }
    expect(result.sha256).toBe(sha256(tiny))
    expect(result.pin).toBe('new')
    expect(result.download.resumedFromBytes).toBe(partial!.sizeBytes)
    // Plain progress lines on a pipe: the download's quarters, no terminal escape codes.
    expect(second.stderr).toMatch(/Downloading hf:lull\/tiny-GGUF\/lull-tiny\.gguf: [\d.]+ MiB of 5\.1 MiB \(100%\)/)
    expect(second.stderr).toContain('resumed at')
    expect(second.stderr).not.toContain('\u001b[')

    const pinned = (await list()).find((entry) => entry.source === FILE_URI)
    expect(pinned).toMatchObject({ state: 'ready', pinned: true, sha256: sha256(tiny), sizeBytes: tiny.length })
  })

  it('refuses a file that changed upstream since it was pinned, until the new digest is confirmed', async () => {
    const pinned = (await list()).find((entry) => entry.source === FILE_URI)!
    await rm(pinned.path, { force: true })
    hub.files.set('lull-tiny.gguf', changed)
    try {
      const refused = await lullNode(['models', 'pull', FILE_URI, '--data-dir', dataDir], env)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(`changed upstream since it was pinned: its SHA-256 was ${sha256(tiny)}`)
      expect(refused.stderr).toContain(`--model-sha256 ${sha256(changed)}`)
      expect((await list()).find((entry) => entry.source === FILE_URI)).toMatchObject({ sha256: sha256(tiny) })

      const confirmed = await lullNode(
        ['models', 'pull', FILE_URI, '--model-sha256', sha256(changed), '--json', '--data-dir', dataDir],
        env,
      )
      expect(confirmed.code).toBe(0)
      expect(JSON.parse(confirmed.stdout)).toMatchObject({ sha256: sha256(changed), pin: 'updated' })
    } finally {
      hub.files.set('lull-tiny.gguf', tiny)
    }
  })

  it('resolves a quantisation tag through the manifest API', async () => {
    hub.requests.length = 0
    const pulled = await lullNode(['models', 'pull', 'hf:lull/tiny-GGUF:Q8_0', '--json', '--data-dir', dataDir], env)
    expect(pulled.code).toBe(0)
    expect(JSON.parse(pulled.stdout)).toMatchObject({ source: 'hf:lull/tiny-GGUF:Q8_0', sha256: sha256(tiny) })
    expect(hub.requests.map((request) => request.path)).toEqual([
      '/v2/lull/tiny-GGUF/manifests/Q8_0',
      '/lull/tiny-GGUF/resolve/main/lull-tiny.Q8_0.gguf',
    ])
  })

  it('validates a download before use: a truncated GGUF is refused and not pinned', async () => {
    const refused = await lullNode(['models', 'pull', 'hf:lull/tiny-GGUF/broken.gguf', '--data-dir', dataDir], env)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(
      /Refusing model file hf:lull\/tiny-GGUF\/broken\.gguf .*ends past the end of the file.*incomplete/,
    )
    expect((await list()).map((entry) => entry.source)).not.toContain('hf:lull/tiny-GGUF/broken.gguf')
  })

  it('says what to do when the hub cannot be reached', async () => {
    const closed = createServer()
    await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done))
    const { port } = closed.address() as AddressInfo
    await new Promise((done) => closed.close(done))
    const offline = await lullNode(['models', 'pull', 'hf:lull/other-GGUF/other.gguf', '--data-dir', dataDir], {
      HF_ENDPOINT: `http://127.0.0.1:${port}`,
      MODEL_ENDPOINT: '',
    })
    expect(offline.code).toBe(1)
    expect(offline.stderr).toMatch(
      new RegExp(
        `Could not reach 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)\\. Pull the model on a machine with network`,
      ),
    )
    expect(offline.stderr).toContain('pass its path (--model /path/to/file.gguf)')
  })

  it('benchmarks a pulled model and prints prefill and decode tokens/s as JSON, progress on stderr', async () => {
    hub.requests.length = 0
    const bench = await lullNode(
      [
        'bench',
        '--model',
        'hf:lull/tiny-GGUF:Q8_0',
        '--threads',
        '1',
        '--slots',
        '2',
        '--rounds',
        '2',
        '--json',
        '--data-dir',
        dataDir,
      ],
      env,
    )
    expect(bench.code).toBe(0)
    expect(hub.requests).toEqual([]) // pinned and stored: nothing downloaded again
    const report = JSON.parse(bench.stdout) as {
      model: { source: string; sha256: string }
      slots: number
      rounds: number
      prefillTokensPerSecond: number
      decodeTokensPerSecond: number
      runs: unknown[]
    }
    expect(report.model).toMatchObject({ source: 'hf:lull/tiny-GGUF:Q8_0', sha256: sha256(tiny) })
    expect(report).toMatchObject({ slots: 2, rounds: 2 })
    expect(report.runs).toHaveLength(2)
    expect(report.prefillTokensPerSecond).toBeGreaterThan(0)
    expect(report.decodeTokensPerSecond).toBeGreaterThan(0)
    expect(bench.stderr).toContain('Measuring prefill and decode: round 2 of 2')
    expect(bench.stderr).not.toContain('\u001b[')
  })

  it('pulls a local GGUF file into the store, lists it as a table, and removes it', async () => {
    const localPath = join(dataDir, 'my-model.gguf')
    await writeFile(localPath, tiny)
    const pulled = await lullNode(['models', 'pull', localPath, '--data-dir', dataDir], env)
    expect(pulled.code).toBe(0)
    expect(pulled.stdout).toBe(`${localPath} ${sha256(tiny)} 5.1 MiB (new)\n`)
    const table = await lullNode(['models', 'list', '--data-dir', dataDir], env)
    expect(table.code).toBe(0)
    expect(table.stdout.split('\n')[0]).toMatch(/^MODEL +SIZE +SHA-256 +PINNED +PATH$/)
    expect(table.stdout).toMatch(
      new RegExp(
        `\n${localPath.replaceAll('.', '\\.')} +5\\.1 MiB +${sha256(tiny).slice(0, 16)} +yes +\\S+/models/sha256/${sha256(tiny)}\\.gguf\n`,
      ),
    )
    const removed = await lullNode(['models', 'rm', localPath, '--data-dir', dataDir], env)
    expect(removed.code).toBe(0)
    expect(removed.stdout).toContain(`removed ${localPath} and its pin`)
    expect((await list()).map((entry) => entry.source)).not.toContain(localPath)
  })

  it('removes a model: its pin and its stored copy', async () => {
    const before = (await list()).find((entry) => entry.source === FILE_URI)!
    const removed = await lullNode(['models', 'rm', FILE_URI, '--data-dir', dataDir], env)
    expect(removed.code).toBe(0)
    expect(removed.stdout).toContain(`removed ${FILE_URI} and its pin`)
    expect((await list()).map((entry) => entry.source)).not.toContain(FILE_URI)
    await expect(stat(before.path)).rejects.toThrow(/ENOENT/)
    const again = await lullNode(['models', 'rm', FILE_URI, '--data-dir', dataDir], env)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain("'lull-node models list' shows what there is")
  })
})

describe('lull-node bench and models rm beside a running node', () => {
  let network: TestNetwork
  beforeAll(async () => {
    network = await startTestNetwork({ nodes: 1, slots: 1 })
  })
  afterAll(async () => {
    await network?.stop()
  })

  it('prints prefill and decode tokens/s for lull-tiny', async () => {
    const bench = await lullNode([
      'bench',
      '--threads',
      '1',
      '--rounds',
      '1',
      '--data-dir',
      join(network.dataDir, 'bench'),
    ])
    expect(bench.code).toBe(0)
    expect(bench.stdout).toMatch(/^lull-tiny \([0-9a-f]{12}, 5\.1 MiB\), 4 slots, 1 thread, cpu, median of 1\n/)
    expect(bench.stdout).toMatch(/\nprefill +[\d,]+ tokens\/s\ndecode +[\d,]+ tokens\/s\n$/)
  })

  it('lull-node start downloads an hf: model with progress, then serves it', async () => {
    const child = spawn(
      process.execPath,
      [
        NODE,
        'start',
        '--coordinator',
        network.address,
        '--model',
        FILE_URI,
        '--when',
        'always',
        '--threads',
        '1',
        '--slots',
        '1',
        '--data-dir',
        join(network.dataDir, 'hf-node'),
        '--log-level',
        'silent',
      ],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stdout = ''
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    try {
      await new Promise<void>((done, fail) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString()
          if (stdout.includes('\n')) done()
        })
        child.once('exit', (code) => fail(new Error(`lull-node exited with ${code}: ${stderr}`)))
      })
      expect(stdout).toMatch(/^lull-node 12D3KooW\S+ serving lull-tiny \(1 slots, \d+ tokens\/s\)/)
      expect(stderr).toContain(`Downloading ${FILE_URI}: 5.1 MiB of 5.1 MiB (100%)`)
      expect(stderr).toContain(`Downloaded ${FILE_URI} (5.1 MiB)`)
    } finally {
      const exited = new Promise((done) => child.once('exit', done))
      child.kill('SIGTERM')
      await exited
    }
  })

  it('refuses to remove the model a running node serves unless forced, and says what happens then', async () => {
    const nodeDir = join(network.dataDir, 'node-0')
    const refused = await lullNode(['models', 'rm', 'lull-tiny', '--data-dir', nodeDir])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`The node running with this data dir (pid ${process.pid}) serves 'lull-tiny'`)
    const forced = await lullNode(['models', 'rm', 'lull-tiny', '--force', '--data-dir', nodeDir])
    expect(forced.code).toBe(0)
    expect(forced.stderr).toContain('the running node keeps serving its copy until it stops')
  })
})
